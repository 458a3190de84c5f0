r"""Mode coverage of a toy GAN config over several seeds (mean +- standard error), printed as JSON.

  python -m benchmarks.gan_modes --config=experiments/configs/toy2d_wgan_gp.py:grid \
      --workdir=/tmp/gm_jax/gan_modes/wgan_gp_grid --seeds=0,1,2,3,4 --num_steps=100000

Each seed is an ordinary training run through the one trainer in `WORKDIR/seed_S` (rerunning resumes
unfinished seeds and reuses finished ones). The final line holds, for every metric in the runs'
summary.json (modes captured, high-quality fraction, reverse KL), the per-seed values, their mean and
the standard error of the mean.
"""

from __future__ import annotations

import math
import pathlib

from absl import flags, logging
from ml_collections import config_flags

from benchmarks.timing import emit
from gm_jax import tasks
from gm_jax.train import command_line
from gm_jax.train.run_files import to_json

config_flags.DEFINE_config_file("config", None, "Toy GAN config file (FILE or FILE:ARG).", lock_config=True)
flags.DEFINE_string("workdir", None, "Parent directory; seed S trains in WORKDIR/seed_S.")
flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Seeds to train.")
flags.DEFINE_integer("num_steps", None, "Training steps per seed (default: the config's).", lower_bound=1)
flags.mark_flags_as_required(["config", "workdir"])

REPORTED = ("modes_captured", "high_quality_fraction", "reverse_kl")


def mean_and_standard_error(values: list[float]) -> tuple[float, float]:
  n = len(values)
  mean = sum(values) / n
  if n < 2:
    return mean, float("nan")
  variance = sum((v - mean) ** 2 for v in values) / (n - 1)
  return mean, math.sqrt(variance / n)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  config = flags.FLAGS.config
  num_steps = config.train.num_steps if flags.FLAGS.num_steps is None else flags.FLAGS.num_steps
  with config.unlocked():
    config.train.num_steps = num_steps
    config.train.checkpoint_every = min(config.train.checkpoint_every, num_steps)
    config.train.progress_bar = False
  per_seed = {}
  for seed in map(int, flags.FLAGS.seeds):
    run_config = config.copy_and_resolve_references()
    run_config.seed = seed
    summary = tasks.train(run_config, str(pathlib.Path(flags.FLAGS.workdir) / f"seed_{seed}"))
    # A finished seed's summary, read back, holds null where the metric was NaN (no mode captured).
    per_seed[seed] = {name: math.nan if summary[name] is None else float(summary[name]) for name in REPORTED}
    print(to_json({"seed": seed, **per_seed[seed]}), flush=True)
  result = {"benchmark": "gan_modes", "loss": config.objective.loss,
            "data": config.data.distribution, "num_steps": num_steps, "seeds": sorted(per_seed)}
  for name in REPORTED:
    values = [per_seed[s][name] for s in sorted(per_seed)]
    mean, sem = mean_and_standard_error(values)
    result[name] = {"values": values, "mean": mean, "standard_error": sem}
  emit(result)


if __name__ == "__main__":
  command_line.run(main)
