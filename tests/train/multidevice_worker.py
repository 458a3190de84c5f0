"""Runs a few train steps and prints their losses as JSON; tests launch it with different device counts.

Two tasks: the toy2d Gaussian mixture, and a task whose loss draws per-example noise from
fold_in(key, global example index), so its value must not depend on how the batch is split.
"""

import json
import sys

import jax
import jax.numpy as jnp
import optax

from gm_jax import data as data_lib
from gm_jax import tasks
from gm_jax.evaluation.metrics import masked_mean
from gm_jax.train import optim, rng, sharding, step as step_lib
from gm_jax.train.task import Task, Update
from tests.conftest import load_config


def noisy_task() -> Task:
  def loss_fn(params, model_state, batch, key):
    eps_B2 = jax.vmap(lambda k: jax.random.normal(k, (2,)))(rng.per_example_keys(key, batch["index"]))
    err_B = jnp.sum((batch["x"] + eps_B2 - params["net"]["w"]) ** 2, axis=-1)
    total, count = masked_mean(err_B, batch["mask"])
    return total / count, ({}, {})

  return Task(init=lambda key, batch: {"net": {"params": {"w": jnp.ones(2)}}},
              updates=(Update("net", loss_fn),), eval_fn=lambda *a: {})


def losses(task, optimizers, dataset, batch_size, num_steps):
  mesh = sharding.make_mesh()
  it = data_lib.TrainIterator(dataset.train, batch_size, seed=0)
  first = next(data_lib.TrainIterator(dataset.train, batch_size, seed=0))
  state = step_lib.StateInit(task, optimizers, mesh, use_ema=True)(jax.random.key(0), first)
  train_step = step_lib.TrainStep(task, optimizers, jax.random.key(1), mesh, ema_decay=0.9)
  out = []
  for _ in range(num_steps):
    state, metrics = train_step(state, sharding.put_batch(next(it), mesh))
    out.append(float(metrics["loss"][0]))
  return out, mesh.size


def main():
  config = load_config("toy2d_gmm", "tiny")
  dataset = data_lib.load_dataset(config.data)
  gmm_task = tasks.build(config, dataset)
  gmm, devices = losses(gmm_task, optim.make_optimizers(config, gmm_task.optimizer_blocks)[0], dataset, 64, 5)
  noisy, _ = losses(noisy_task(), {"net": optax.adam(0.05)}, dataset, 64, 5)
  json.dump({"devices": devices, "gmm": gmm, "noisy": noisy}, sys.stdout)


if __name__ == "__main__":
  main()
