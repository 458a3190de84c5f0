r"""Launches an experiment: train, evaluate or sample a config.

  python experiments/main.py --config=experiments/configs/toy2d_gmm.py --workdir=/tmp/run
  python experiments/main.py --config=experiments/configs/toy2d_gmm.py:tiny --workdir=/tmp/run \
      --config.optim.learning_rate=3e-3
  python experiments/main.py --config=... --workdir=/tmp/run --mode=eval

The config is locked: overriding a field that does not exist is an error. Rerunning the same command
with the same workdir resumes from the latest checkpoint.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Config file, optionally FILE:ARG (e.g. :tiny).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, samples and summary.")
flags.DEFINE_enum("mode", "train", ["train", "eval", "sample"], "What to do with the config.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # checkpointing libraries log every file at INFO
  import jax

  from gm_jax.train import loop, run_files

  logging.info("devices: %s", jax.devices())
  config = flags.FLAGS.config
  workdir = flags.FLAGS.workdir
  mode = flags.FLAGS.mode
  try:
    if mode == "train":
      result = loop.train(config, workdir)
    elif mode == "eval":
      result = loop.evaluate(config, workdir)
    else:
      result = {"samples": str(loop.sample(config, workdir))}
  except (ValueError, FileNotFoundError, RuntimeError, FloatingPointError) as e:
    # Bad input and failed runs end with one line that says what to change.
    # The run's files are already closed; exit at once so that late callbacks of background I/O
    # threads (e.g. a failed checkpoint read) cannot print tracebacks after the message.
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(1)
  print(run_files.to_json(result, indent=2, default=str))


if __name__ == "__main__":
  app.run(main)
