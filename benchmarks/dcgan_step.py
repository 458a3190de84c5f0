r"""Speed of the seed's DCGAN-64 GAN step (batch 64, one discriminator and one generator update) beside
the same networks and update in PyTorch, timed in one run, as one JSON line.

  python -m benchmarks.dcgan_step [--compute_dtype=bfloat16] [--reference=torch|none] [--rounds=3]

Synthetic uint8 images stand in for CelebA (the step's cost does not depend on the pixel values); the
step is the trainer's own compiled step for the gan task (non-saturating loss, Adam, BatchNorm). The
PyTorch reference (benchmarks.torch_reference) runs in float32 with as many threads as XLA:CPU; rounds
of the two alternate so that load changes hit both alike, and `ratio` is gm_jax's median over PyTorch's.
"""

from __future__ import annotations

import time

import jax
import numpy as np
from absl import flags

from benchmarks.timing import (add_timings, compiled_flops, emit, matmul_peaks, op_profile, require_reference,
                               time_interleaved, use_threads, without_persistent_cache)
from gm_jax import data as data_lib
from gm_jax.data.dataset import DataSpec, Dataset
from gm_jax.tasks import gan
from gm_jax.train import command_line, sharding, step as step_lib

flags.DEFINE_integer("rounds", 3, "Interleaved timing rounds.", lower_bound=1)
flags.DEFINE_integer("per_round", 2, "Steps of each framework per round.", lower_bound=1)
flags.DEFINE_integer("batch_size", 64, "Batch size.", lower_bound=1)
flags.DEFINE_enum("compute_dtype", "float32", ["float32", "bfloat16"], "gm_jax's train.compute_dtype.")
flags.DEFINE_enum("reference", "torch", ["torch", "none"], "Time the PyTorch reference too, or not.")
flags.DEFINE_integer("threads", 0, "Cores (and threads) for both frameworks; 0: all this process may use.")
flags.DEFINE_integer("profile_ops", 0, "Also report the step's N most expensive XLA operations (top_ops).",
                     lower_bound=0)

IMAGE_SIZE = 64  # the seed's network (the PyTorch reference is built for it)


def dcgan_config(batch_size: int, compute_dtype: str = "float32"):
  config = gan.default_config()
  config.data.name = "synthetic"
  config.data.batch_size = batch_size
  config.model.latent_dim = 100
  config.model.features = 64
  config.objective.loss = "non_saturating"
  config.train.compute_dtype = compute_dtype
  for block in (config.optim, config.optim_d):
    block.update(learning_rate=2e-4, b1=0.5)
  return config


def main(argv):
  del argv
  require_reference(flags.FLAGS.reference)
  threads = use_threads(flags.FLAGS.threads)
  without_persistent_cache()
  size, batch = IMAGE_SIZE, flags.FLAGS.batch_size
  config = dcgan_config(batch, flags.FLAGS.compute_dtype)
  images = np.random.default_rng(0).integers(0, 256, size=(4 * batch, size, size, 3), dtype=np.uint8)
  source = data_lib.ArraySource({"x": images})
  dataset = Dataset("synthetic", source, source, DataSpec("image", (size, size, 3), num_levels=256))
  task = gan.build(config, dataset)
  mesh = sharding.make_mesh()
  it = data_lib.TrainIterator(source, batch, seed=0)
  batches = [sharding.put_batch(next(it), mesh) for _ in range(4)]
  init, train_step, _ = step_lib.from_config(task, config, mesh, jax.random.key(1))
  state = init(jax.random.key(0), batches[0])
  start = time.perf_counter()
  lowered = train_step.jit(state).lower(state, batches[0])
  compiled = lowered.compile()
  compile_s = time.perf_counter() - start
  holder = {"state": state, "i": 0}

  def jax_step(executable=compiled):
    holder["state"], metrics = executable(holder["state"], batches[holder["i"] % 4])
    holder["i"] += 1
    jax.block_until_ready(metrics)

  fns = {"jax": jax_step}
  counts = {name: sum(p.size for p in jax.tree.leaves(state.networks[name].params))
            for name in ("generator", "discriminator")}
  record = {"benchmark": "dcgan_step", "image_size": size, "batch_size": batch, "updates": "1 D + 1 G",
            "compute_dtype": flags.FLAGS.compute_dtype, "num_params": counts, "compile_s": compile_s,
            "threads": threads}
  if flags.FLAGS.reference == "torch":
    import torch

    from benchmarks import torch_reference as ref

    ref.set_threads()
    ref.seed(0)
    g, d = ref.TorchDCGANGenerator(config.model.latent_dim), ref.TorchDCGANDiscriminator()
    if (ref.num_params(g), ref.num_params(d)) != (counts["generator"], counts["discriminator"]):
      raise RuntimeError(f"PyTorch's DCGAN has {ref.num_params(g)} + {ref.num_params(d)} parameters, "
                         f"gm_jax's {counts}")
    torch_step = ref.dcgan_step(g, d, config.model.latent_dim)
    real = [torch.from_numpy(np.array(b["x"])).permute(0, 3, 1, 2).float().div(127.5).sub(1.0).contiguous()
            for b in batches]
    count = {"i": 0}

    def torch_run():
      torch_step(real[count["i"] % len(real)])
      count["i"] += 1

    fns["torch"] = torch_run
  stats = time_interleaved(fns, warmup=1, rounds=flags.FLAGS.rounds, per_round=flags.FLAGS.per_round)
  add_timings(record, stats)
  flops = compiled_flops(compiled)
  peaks = matmul_peaks()
  peak = peaks[flags.FLAGS.compute_dtype]
  record.update({"step_gflop": flops / 1e9 if flops else None,
                 "matmul_peak_gflops": {k: v / 1e9 for k, v in peaks.items()},
                 "mfu": flops / (record["ms_median"] / 1e3) / peak if flops else None})
  if flags.FLAGS.profile_ops:
    record["top_ops"] = op_profile(lowered, jax_step, top=flags.FLAGS.profile_ops)
  emit(record)


if __name__ == "__main__":
  command_line.run(main)
