r"""Trains the digits classifier (experiments/configs/digits_classifier.py) and exports the feature network
of FD-digits, with its test accuracy and the data floor it defines:

  python experiments/export_digits_classifier.py --workdir=/tmp/gm_jax/digits_classifier \
      --out=gm_jax/evaluation/weights/digits_classifier

The package ships the export this made, so that FD-digits is the same metric on every machine; rerun it
only to define a new digits feature space (numbers measured in different spaces are not comparable).
Training is deterministic on one machine with the same XLA options; another CPU gives other float rounding.
"""

from __future__ import annotations

import json
import pathlib

from absl import flags

from gm_jax.train import command_line

flags.DEFINE_string("workdir", "/tmp/gm_jax/digits_classifier", "The training run's workdir (a finished run "
                    "there is read, not retrained).")
flags.DEFINE_string("out", None, "Directory to export the network to.")
flags.mark_flag_as_required("out")


def main(argv):
  del argv
  from gm_jax.tasks import classifier

  info = classifier.train_and_export(pathlib.Path(flags.FLAGS.out), pathlib.Path(flags.FLAGS.workdir))
  print(json.dumps(info))


if __name__ == "__main__":
  command_line.run(main)
