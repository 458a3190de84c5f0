r"""Sample quality against network evaluations (NFE) for every diffusion sampler, on a trained run.

  python -m benchmarks.diffusion_samplers --config=experiments/configs/toy2d_ddpm.py \
      --workdir=/tmp/gm_jax/toy2d_ddpm [--num_samples=5000]
  python -m benchmarks.diffusion_samplers --config=experiments/configs/digits_ddpm.py \
      --workdir=/tmp/gm_jax/digits_ddpm --num_samples=1000

Restores the run's latest checkpoint (EMA parameters when the run keeps them) and draws samples with
each sampler at several step counts. Quality on toy2d, against the toy density's closed form and its
test points: `sample_nll_nats` = -mean log p_data(sample) (compare with the entropy: a sampler that
collapses onto the modes scores below it, a blurry one above), and `energy_distance` between the
samples and as many test points (0 for equal distributions; it penalizes both kinds of error). On
images: the run's sample-quality metrics (FD, KID, precision/recall/density/coverage) in its feature
space (FD-digits on digits) against the run's own reference (eval.quality_reference), with its data
floor (as many real examples of the other split, drawn as its evaluation draws them) in the final line.
Prints one JSON line per (sampler, steps) and a final summary line.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags, logging
from ml_collections import config_flags

from benchmarks.timing import config_name, emit
from gm_jax.diffusion.processes import DiscreteDDPM
from gm_jax.evaluation import quality_report
from gm_jax.sampling import diffusion as samplers
from gm_jax import tasks
from gm_jax.tasks.diffusion import DiffusionModel, network_evaluations, to_levels
from gm_jax.train import command_line
from gm_jax.train.run_files import to_json

config_flags.DEFINE_config_file("config", None, "The trained run's config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "The trained run's workdir.")
flags.DEFINE_integer("num_samples", 5000, "Samples per sampler setting.", lower_bound=1)
flags.DEFINE_list("samplers", [], "Only these samplers of the grid (e.g. ode_heun,edm_heun); default: all.")
flags.mark_flags_as_required(["config", "workdir"])


def energy_distance(x, y) -> float:
  """2 E|X - Y| - E|X - X'| - E|Y - Y'| (Szekely & Rizzo), V-statistic."""
  pair_mean = jax.jit(lambda a, b: jnp.mean(jnp.sqrt(jnp.sum((a[:, None] - b[None]) ** 2, -1) + 1e-12)))
  return float(2 * pair_mean(x, y) - pair_mean(x, x) - pair_mean(y, y))


def settings(process, images: bool = False) -> list[tuple[str, dict]]:
  """The (sampler, arguments) grid: DDIM at the NFE of the cross-method comparison (5, 10, 20, 35, 100; on
  the linear interpolant it is Euler on the flow-matching ODE, also at 1 and 2) and at 50, EDM's Heun at
  5, 9, 19 and 35, the probability-flow ODE by Heun. On images (a U-Net per evaluation) the few-step
  deterministic samplers only: the run's own evaluation already scores its configured sampler. Samplers
  that need a finite log-SNR at t = 1 are left out for flow-matching paths."""
  finite_log_snr = not process.ends_in_pure_noise
  few = () if finite_log_snr else (1, 2)  # a (re)flow's straight paths may need only one or two Euler steps
  runs = [("ddim", {"num_steps": n}) for n in (*few, 5, 10, 20, 35, 50, 100)]
  if finite_log_snr:
    runs += [("dpm_solver_pp_2m", {"num_steps": n}) for n in (5, 10, 20)]
    runs += [("edm_heun", {"num_steps": n}) for n in (3, 5, 10, 18)]  # NFE 5, 9, 19, 35
  runs += [("ode_heun", {"solver": "heun", "num_steps": n})
           for n in ((5, 10, 25) if images else (10, 25, 50))]
  if finite_log_snr:  # ancestral sampling on a strided schedule: DDIM with eta = 1
    runs += [("ddim", {"num_steps": n, "eta": 1.0}) for n in (10, 100)]
  if images:
    return runs
  runs += [("ode_tsit5_adaptive", {"solver": "tsit5", "rtol": 1e-3, "atol": 1e-3}),
           ("ode_tsit5_adaptive", {"solver": "tsit5", "rtol": 1e-5, "atol": 1e-5})]
  if finite_log_snr:
    runs += [("euler_maruyama", {"num_steps": n}) for n in (100, 1000)]
    runs += [("predictor_corrector", {"num_steps": n}) for n in (100, 500)]
  if isinstance(process, DiscreteDDPM):
    runs += [("ddpm_ancestral", {"variance": v}) for v in ("large", "small")]
    # DDIM strides over the chain's own steps: a short chain (a :tiny run's) has fewer than the grid.
    runs = [(name, kwargs) for name, kwargs in runs
            if name != "ddim" or kwargs["num_steps"] <= process.num_steps]
  return runs


SAMPLER_FNS = {"ddim": samplers.ddim, "dpm_solver_pp_2m": samplers.dpm_solver_pp_2m,
               "edm_heun": samplers.edm_heun,
               "ode_heun": samplers.probability_flow_ode, "ode_tsit5_adaptive": samplers.probability_flow_ode,
               "euler_maruyama": samplers.euler_maruyama, "predictor_corrector": samplers.predictor_corrector,
               "ddpm_ancestral": samplers.ddpm_ancestral}


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  config = flags.FLAGS.config
  if config.task != "diffusion":
    raise ValueError(f"--config is a {config.task} config; this benchmark samples diffusion and "
                     f"flow-matching runs")
  # Refused like --mode=eval when the run's config differs outside eval.* or it has no checkpoint.
  exp, state = tasks.restored(config, flags.FLAGS.workdir)
  exp.checkpointer.close()
  spec = exp.dataset.spec
  dist = spec.extras.get("distribution")
  space = exp.feature_space if spec.kind == "image" else None
  if dist is None and space is None:
    raise ValueError("this benchmark scores samples against a toy2d density or in an image feature space; "
                     "use a toy2d or image diffusion config with eval.feature_space set")
  params = state.params(exp.use_ema)["model"]
  n = flags.FLAGS.num_samples
  # A class-conditional run draws equal runs of each class, guided by eval.guidance, as its training did.
  model = DiffusionModel(config)
  denoiser = model.sampling_denoiser(params, n, config.eval.guidance)
  test = exp.dataset.test[np.arange(min(n, len(exp.dataset.test)))]["x"]
  ev = config.eval
  quality = dict(kid_subsets=ev.kid_subsets, kid_subset_size=ev.kid_subset_size, prdc_k=ev.prdc_k,
                 fd_resamples=ev.fd_resamples)
  floor = {}
  if space is not None:  # the reference and data floor of the run's own evaluation
    reference, floor_examples = exp.quality_real_sets(n)
    reference_feats, _ = space.embed(reference)
    floor = quality_report.compare(*space.embed(floor_examples["x"]), reference_feats, **quality)
  rows = []
  grid = settings(denoiser.process, images=space is not None)
  if flags.FLAGS.samplers:
    unknown = sorted(set(flags.FLAGS.samplers) - {name for name, _ in grid})
    if unknown:
      raise ValueError(f"--samplers: {', '.join(unknown)} not in this config's grid; choose from "
                       f"{', '.join(sorted({name for name, _ in grid}))}")
    grid = [(name, kwargs) for name, kwargs in grid if name in flags.FLAGS.samplers]
  for name, kwargs in grid:
    fn = jax.jit(lambda key, fn=SAMPLER_FNS[name], kwargs=kwargs:
                 fn(denoiser, key, (n, *spec.shape), **kwargs))
    fn(jax.random.key(0))  # compile
    start = time.perf_counter()
    x, nfe = jax.block_until_ready(fn(jax.random.key(1)))
    seconds = time.perf_counter() - start
    x = np.asarray(x)
    row = {"sampler": name, **kwargs, "nfe": network_evaluations(int(nfe), config.eval.guidance),
           "seconds": seconds}
    if space is None:
      row.update(sample_nll_nats=-float(np.mean(np.asarray(dist.log_prob(x)))),
                 energy_distance=energy_distance(x, test))
    else:
      feats, probs = space.embed(np.asarray(to_levels(x, spec.num_levels)))
      row.update(quality_report.compare(feats, probs, reference_feats, **quality))
      if model.num_classes and space.classes_are_data_labels:
        row["class_accuracy"] = quality_report.class_accuracy(probs, model.sample_labels(n))
    rows.append(row)
    print(to_json(row), flush=True)
  emit({"benchmark": "diffusion_samplers", "config": config_name(flags.FLAGS["config"]),
        "process": config.process.name, "num_samples": n,
        "step": int(state.step), "feature_space": space.name if space else None,
        "floor": floor, "results": rows})

if __name__ == "__main__":
  command_line.run(main)
