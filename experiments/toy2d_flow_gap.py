r"""Where a toy2d flow's test NLL lies above the true density's: the per-example excess
log p_true(x) - log p_flow(x) over the test split, how it is spread (quantiles, the share of the largest
values), and for the Gaussian mixtures (ring, grid) how it splits by the distance to the nearest mode and
how much of the flow's own mass lies within a few standard deviations of a mode.

  python experiments/toy2d_flow_gap.py --workdir=/tmp/gm_jax/toy2d_realnvp_ring

reads the run's config.json and newest checkpoint (read-only, so a training may still be writing) and
prints one JSON object. docs/BASELINES.md ("What is left of RealNVP's ring gap") reads it.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import flags

from gm_jax import tasks
from gm_jax.data import toy2d
from gm_jax.models.flows import Flow
from gm_jax.tasks.flow import flow_config
from gm_jax.train import command_line, defaults
from gm_jax.train.config_checks import config_to_dict

flags.DEFINE_string("workdir", None, "A finished (or checkpointed) toy2d flow run.", required=True)
flags.DEFINE_integer("num_samples", 200_000, "Flow samples drawn to measure its mass near the modes.",
                     lower_bound=1)

DISTANCE_BINS = (0, 1, 2, 3, 4, np.inf)  # in mode standard deviations
MASS_RADII = (2, 3, 4, 6)


def _in_batches(fn, x: np.ndarray, size: int = 5000) -> np.ndarray:
  return np.concatenate([np.asarray(fn(jnp.asarray(x[i:i + size]))) for i in range(0, len(x), size)])


def _overlaid(base: dict, stored: dict) -> dict:
  """`stored` with the fields it lacks taken from `base`, nested blocks too."""
  out = dict(base)
  for key, value in stored.items():
    out[key] = _overlaid(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) \
        else value
  return out


def excess_report(workdir: str | pathlib.Path, num_samples: int = 200_000) -> dict[str, Any]:
  workdir = pathlib.Path(workdir)
  if not (workdir / "config.json").is_file():
    raise FileNotFoundError(f"{str(workdir)!r} holds no run (no config.json); pass the --workdir of a "
                            f"toy2d flow run")
  stored = json.loads((workdir / "config.json").read_text())
  # Laid over the family's defaults: a run from before a field was added lacks it (as --mode=eval allows).
  family = defaults.starting_configs(stored.get("task", ""))[-1]
  config = ml_collections.ConfigDict(_overlaid(config_to_dict(family), stored))
  if config.task != "flow" or config.data.name != "toy2d":
    raise ValueError(f"{str(workdir)!r} holds a {config.task} run on {config.data.name}; this reads toy2d "
                     f"flow runs")
  # Restored onto this process's devices, whichever layout trained it (the checkpoint restores onto any).
  config.mesh.fsdp = 1
  exp, state = tasks.restored(config, workdir)  # read-only; one line when it holds no checkpoint yet
  exp.checkpointer.close()
  params = state.params(exp.use_ema)["model"]
  flow = Flow(flow_config(config, exp.dataset))
  log_p_flow = jax.jit(lambda x: flow.apply({"params": params}, x))
  dist = toy2d.make(config.data.distribution, **dict(config.data.geometry))

  x = np.asarray(exp.dataset.test[np.arange(len(exp.dataset.test))]["x"])
  model = _in_batches(log_p_flow, x).astype(np.float64)
  true = _in_batches(dist.log_prob, x).astype(np.float64)
  excess = true - model
  largest = np.sort(excess)[::-1]
  report = {
      "step": int(state.step), "num_test": len(x), "model_nll_nats": float(-model.mean()),
      "true_nll_nats": float(-true.mean()), "excess_nats": float(excess.mean()),
      "excess_quantiles": {str(q): float(np.quantile(excess, q)) for q in (0.01, 0.1, 0.5, 0.9, 0.99, 0.999)},
      # How much of the summed excess the largest values carry: a few far-off points, or the bulk.
      # (null when the summed excess is not positive; no k beyond the test split's size).
      "share_of_largest": {str(k): float(largest[:k].sum() / excess.sum()) if excess.sum() > 0 else None
                           for k in (10, 100, 1000) if k < len(x)},
  }
  if isinstance(dist, toy2d.IsotropicMixture):
    means = np.asarray(dist.means_K2, np.float64)

    def distance_in_stds(points):
      return np.sqrt(((points[:, None, :] - means[None]) ** 2).sum(-1)).min(-1) / dist.std

    d = distance_in_stds(x)
    report["by_distance_to_a_mode"] = [
        {"stds": [lo, None if hi == np.inf else hi], "fraction": float(np.mean(inside)),
         "mean_excess": float(excess[inside].mean()) if inside.any() else None,
         "contribution": float(excess[inside].sum() / len(x))}
        for lo, hi in zip(DISTANCE_BINS[:-1], DISTANCE_BINS[1:]) for inside in [(d >= lo) & (d < hi)]]
    draw = jax.jit(lambda key, n: flow.apply({"params": params}, key, n, 1.0, method=Flow.sample),
                   static_argnums=1)
    chunks = [np.asarray(draw(jax.random.key(i), min(50_000, num_samples - i * 50_000)))
              for i in range(-(-num_samples // 50_000))]
    ds = distance_in_stds(np.concatenate(chunks).astype(np.float64))
    # The true fraction within r stds of a 2-D isotropic Gaussian's centre is 1 - exp(-r^2 / 2).
    report["mass_within_stds"] = {
        str(r): {"flow": float(np.mean(ds < r)), "true": float(1 - np.exp(-r * r / 2))} for r in MASS_RADII}
  return report


def main(argv):
  del argv
  print(json.dumps(excess_report(flags.FLAGS.workdir, flags.FLAGS.num_samples)))


if __name__ == "__main__":
  command_line.run(main)
