r"""Writes reflow's training pairs (Liu et al. 2023): noise, and where a trained flow's probability-flow
ODE carries it.

  python experiments/reflow_pairs.py --config=experiments/configs/toy2d_flow_matching.py \
      --workdir=/tmp/gm_jax/toy2d_flow_matching_ring --config.data.distribution=ring \
      --num_pairs=100000 --out=/tmp/gm_jax/ring_pairs.npz

Restores the run's latest checkpoint (its EMA parameters when it keeps them; the config may differ from
the run's only in eval.*) and solves the ODE with the config's ODE sampler solver
(eval.sampler_ode_solver, or eval.ode_solver when that is empty) in eval.sampler_steps steps from each
noise draw, eval.batch_size pairs at a time; batch i draws its noise from a key of --seed that no
training run draws from (gm_jax.tasks.diffusion.draw_reflow_pairs), and the pairs drawn depend on
eval.batch_size as well as on --seed. The 2-rectified flow is then the same config trained on the pairs
(gm_jax.tasks.diffusion.use_reflow):

  python experiments/main.py --config=experiments/configs/toy2d_flow_matching.py \
      --workdir=/tmp/gm_jax/toy2d_reflow_ring --config.data.distribution=ring \
      --config.data.reflow_pairs=/tmp/gm_jax/ring_pairs.npz --config.objective.coupling=pairs
"""

from __future__ import annotations

import pathlib

import jax
from absl import flags
from ml_collections import config_flags

from gm_jax import tasks
from gm_jax.data.reflow_pairs import write_pairs
from gm_jax.tasks.diffusion import DiffusionModel, draw_reflow_pairs
from gm_jax.train import command_line

config_flags.DEFINE_config_file("config", None, "The trained flow's config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "The trained flow's workdir.")
flags.DEFINE_integer("num_pairs", 100_000, "How many (noise, x) pairs to draw.", lower_bound=1)
flags.DEFINE_string("out", None, "The .npz file to write (never overwritten).")
flags.DEFINE_integer("seed", 0, "Seed of the noise (each batch of eval.batch_size pairs draws its own).")
flags.mark_flags_as_required(["config", "workdir", "out"])


def main(argv):
  del argv
  config, out = flags.FLAGS.config, pathlib.Path(flags.FLAGS.out)
  if out.suffix != ".npz" or out.exists():  # refused before the work (write_pairs checks again)
    raise ValueError(f"--out={out} must name a new .npz file (pairs are never overwritten)")
  if config.task != "diffusion" or config.model.num_classes:
    raise ValueError("reflow pairs come from an unconditional diffusion or flow-matching config")
  # The config must be the run's (only eval.* may differ), and the run must have a checkpoint.
  exp, state = tasks.restored(config, flags.FLAGS.workdir)
  exp.checkpointer.close()
  params = state.params(exp.use_ema)["model"]
  denoiser = DiffusionModel(config).denoiser(params)
  pairs = draw_reflow_pairs(denoiser, exp.dataset.spec, config.eval, jax.random.key(flags.FLAGS.seed),
                            flags.FLAGS.num_pairs, config.eval.batch_size)
  print(f"wrote {len(pairs['x'])} pairs to {write_pairs(pairs, str(out))}")


if __name__ == "__main__":
  command_line.run(main)
