r"""Sampling throughput where users wait, as JSON lines: the char GPT's key/value-cache decoding beside
the same decoder in PyTorch, and every diffusion sampler's samples per second and network evaluations.

  python -m benchmarks.sampling [--threads=1] [--batch=12] \
      [--diffusion_config=experiments/configs/digits_ddpm.py]

Throughput does not depend on the weights, so both models are freshly initialized (no checkpoint, no
corpus). Decoding: `gm_jax.sampling.autoregressive.generate` (one compiled scan over positions) from a
one-token prompt to the full context, temperature 1, against `TorchGPT.decode` (nanoGPT-style loop
with a key/value cache, float32); rounds alternate, `ratio` is gm_jax's median time over PyTorch's.
Diffusion: each sampler compiled, then timed drawing `--num_samples` samples in one call.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
from absl import flags

from benchmarks.timing import (REFERENCE_DTYPE, emit, require_reference, time_calls, time_interleaved,
                               use_threads)
from gm_jax.diffusion import processes
from gm_jax.models.transformer import TransformerLM
from gm_jax.sampling import autoregressive
from gm_jax.sampling import diffusion as samplers
from gm_jax.tasks import language_model
from gm_jax.tasks.diffusion import DiffusionModel, network_evaluations
from gm_jax.train import command_line
from gm_jax.train.defaults import load_config_file

flags.DEFINE_integer("threads", 0, "Cores (and threads) for both frameworks; 0: all this process may use.")
flags.DEFINE_integer("batch", 12, "Sequences decoded at once.", lower_bound=1)
flags.DEFINE_enum("reference", "torch", ["torch", "none"], "Time the PyTorch decoder too, or not.")
flags.DEFINE_string("lm_config", "experiments/configs/shakespeare_char_cpu.py", "LM config file.")
flags.DEFINE_string("diffusion_config", "experiments/configs/digits_ddpm.py", "Diffusion config file.")
flags.DEFINE_integer("num_samples", 64, "Diffusion samples per call.", lower_bound=1)
flags.DEFINE_integer("rounds", 5, "Interleaved decoding rounds.", lower_bound=1)

VOCAB = 65  # Tiny Shakespeare's characters


def _file_and_arg(flag_value: str) -> tuple[str, str | None]:
  """A config flag's FILE[:ARG] (e.g. experiments/configs/digits_ddpm.py:tiny), the file checked."""
  file, _, arg = flag_value.partition(":")
  if not pathlib.Path(file).is_file():
    raise FileNotFoundError(f"config file {file!r} does not exist; pass FILE[:ARG], e.g. "
                            f"experiments/configs/digits_ddpm.py:tiny")
  return file, arg or None


def lm_decoding(threads: int) -> None:
  config = load_config_file(*_file_and_arg(flags.FLAGS.lm_config))
  spec = type("Spec", (), {"num_levels": config.data.get("vocab_size") or VOCAB,
                           "shape": (config.data.context + 1,)})
  cfg = language_model.transformer_config(config, type("Data", (), {"spec": spec}))
  model = TransformerLM(cfg)
  b, new = flags.FLAGS.batch, cfg.context - 1
  prompt = jnp.zeros((b, 1), jnp.int32)
  params = model.init(jax.random.key(0), jnp.zeros((1, cfg.context), jnp.int32))["params"]
  generate = jax.jit(lambda p, key: autoregressive.generate(model, p, prompt, key, new, 1.0, 0))
  jax.block_until_ready(generate(params, jax.random.key(1)))
  fns = {"jax": lambda: jax.block_until_ready(generate(params, jax.random.key(1)))}
  record = {"benchmark": "lm_decoding", "config": pathlib.Path(_file_and_arg(flags.FLAGS.lm_config)[0]).stem,
            "batch": b, "new_tokens": new, "compute_dtype": cfg.compute_dtype, "threads": threads}
  if flags.FLAGS.reference == "torch":
    import torch

    from benchmarks import torch_reference as ref

    ref.set_threads()
    ref.seed(0)
    torch_model = ref.TorchGPT(cfg).eval()
    torch_prompt = torch.zeros((b, 1), dtype=torch.long)
    fns["torch"] = lambda: torch_model.decode(torch_prompt, new)
  stats = time_interleaved(fns, warmup=2, rounds=flags.FLAGS.rounds, per_round=2)
  record["ms_median"] = stats["jax"]["ms_median"]
  record["tokens_per_s"] = b * new / (record["ms_median"] / 1e3)
  if "torch" in stats:
    record["reference_ms_median"] = stats["torch"]["ms_median"]
    record["reference_dtype"] = REFERENCE_DTYPE
    record["reference_tokens_per_s"] = b * new / (record["reference_ms_median"] / 1e3)
    record["ratio"] = record["ms_median"] / record["reference_ms_median"]
  emit(record)


def sampler_runs(process) -> list[tuple[str, Callable, dict]]:
  """(name, sampler, arguments) of the samplers timed on `process`."""
  runs = [("ddim", samplers.ddim, {"num_steps": 50}), ("dpm_solver_pp_2m", samplers.dpm_solver_pp_2m,
                                                         {"num_steps": 20}),
          ("ode_heun", samplers.probability_flow_ode, {"solver": "heun", "num_steps": 25}),
          ("euler_maruyama", samplers.euler_maruyama, {"num_steps": 100})]
  if process.ends_in_pure_noise:  # flow matching's paths: no finite log-SNR (nor SDE coefficients) at t = 1
    runs = [run for run in runs if run[0] not in ("dpm_solver_pp_2m", "euler_maruyama")]
  if isinstance(process, processes.DiscreteDDPM):
    runs.append(("ddpm_ancestral", samplers.ddpm_ancestral, {}))
    # DDIM strides over the chain's own steps, of which a short chain (a :tiny config's) has fewer.
    runs[0][2]["num_steps"] = min(runs[0][2]["num_steps"], process.num_steps)
  return runs


def diffusion_sampling(threads: int) -> None:
  config = load_config_file(*_file_and_arg(flags.FLAGS.diffusion_config))
  model = DiffusionModel(config)
  shape = (flags.FLAGS.num_samples, *config_shape(config))
  params = model.init(jax.random.key(0), jnp.zeros((1, *shape[1:])))
  denoiser = model.sampling_denoiser(params, shape[0], config.eval.guidance)
  for name, fn, kwargs in sampler_runs(denoiser.process):
    sample = jax.jit(lambda key, fn=fn, kwargs=kwargs: fn(denoiser, key, shape, **kwargs))
    _, nfe = jax.block_until_ready(sample(jax.random.key(0)))
    stats = time_calls(lambda: jax.block_until_ready(sample(jax.random.key(1))), warmup=0, repeats=3)
    emit({"benchmark": "diffusion_sampling", "config": flags.FLAGS.diffusion_config.split("/")[-1],
          "sampler": name, **kwargs, "nfe": network_evaluations(int(nfe), config.eval.guidance),
          "num_samples": shape[0], "threads": threads,
          "ms_median": stats["ms_median"], "samples_per_s": shape[0] / (stats["ms_median"] / 1e3)})


def config_shape(config) -> tuple[int, ...]:
  """One example's shape from the data config, without loading the data."""
  name = config.data.name
  if name == "digits":
    return (8, 8, 1)
  if name == "toy2d":
    return (2,)
  size = config.data.get("image_size", 0) or 32
  return (size, size, 3)


def main(argv):
  del argv
  require_reference(flags.FLAGS.reference)
  for name, task in (("lm_config", "language_model"), ("diffusion_config", "diffusion")):  # before timing
    config = load_config_file(*_file_and_arg(flags.FLAGS[name].value))
    if config.task != task:
      raise ValueError(f"--{name} is a {config.task} config; give a {task} config")
  threads = use_threads(flags.FLAGS.threads)
  lm_decoding(threads)
  diffusion_sampling(threads)


if __name__ == "__main__":
  command_line.run(main)
