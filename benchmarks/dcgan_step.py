r"""Speed of the seed's DCGAN-64 GAN step: batch 64, one discriminator and one generator update, as JSON.

  python -m benchmarks.dcgan_step [--repeats=5] [--image_size=64] [--batch_size=64]

Synthetic uint8 images stand in for CelebA (the step's cost does not depend on the pixel values); the
step is the trainer's own compiled step for the gan task (non-saturating loss, Adam, BatchNorm).
"""

from __future__ import annotations

import time

import jax
import numpy as np
from absl import app, flags

from benchmarks.timing import emit, time_calls
from gm_jax import data as data_lib
from gm_jax.data.dataset import DataSpec, Dataset
from gm_jax.tasks import gan
from gm_jax.train import optim, sharding, step as step_lib

flags.DEFINE_integer("repeats", 5, "Timed steps.")
flags.DEFINE_integer("image_size", 64, "Image size (64 is the seed's network).")
flags.DEFINE_integer("batch_size", 64, "Batch size.")


def dcgan_config(image_size: int, batch_size: int):
  config = gan.default_config()
  config.data.name = "synthetic"
  config.data.batch_size = batch_size
  config.model.latent_dim = 100
  config.model.features = 64
  config.objective.loss = "non_saturating"
  for optim in (config.optim, config.optim_d):
    optim.learning_rate = 2e-4
    optim.b1 = 0.5
  return config


def main(argv):
  del argv
  size, batch = flags.FLAGS.image_size, flags.FLAGS.batch_size
  config = dcgan_config(size, batch)
  images = np.random.default_rng(0).integers(0, 256, size=(4 * batch, size, size, 3), dtype=np.uint8)
  source = data_lib.ArraySource({"x": images})
  dataset = Dataset("synthetic", source, source, DataSpec("image", (size, size, 3), num_levels=256))
  task = gan.build(config, dataset)
  optimizers, _ = optim.make_optimizers(config, task.optimizer_blocks)
  mesh = sharding.make_mesh()
  it = data_lib.TrainIterator(source, batch, seed=0)
  batches = [sharding.put_batch(next(it), mesh) for _ in range(4)]
  state = step_lib.make_init(task, optimizers, mesh, use_ema=False)(jax.random.key(0), next(
      data_lib.TrainIterator(source, batch, seed=0)))
  train_step = step_lib.TrainStep(task, optimizers, jax.random.key(1), mesh, ema_decay=0.0)
  start = time.perf_counter()
  compiled = train_step.jitted.lower(state, batches[0]).compile()
  compile_s = time.perf_counter() - start
  holder = {"state": state, "i": 0}

  def one_step():
    holder["state"], metrics = compiled(holder["state"], batches[holder["i"] % 4])
    holder["i"] += 1
    jax.block_until_ready(metrics)

  stats = time_calls(one_step, warmup=1, repeats=flags.FLAGS.repeats)
  emit({"benchmark": "dcgan_step", "image_size": size, "batch_size": batch, "updates": "1 D + 1 G",
        "compile_s": compile_s, **stats})


if __name__ == "__main__":
  app.run(main)
