"""What a model family hands the trainer: networks, their losses, evaluation and sampling.

A family adds a Task builder (gm_jax/tasks) made of its models and objectives; the trainer runs every
Task with the same loop. Loss functions follow one signature,

    loss_fn(params, model_state, batch, key) -> (loss, (metrics, new_model_state))

where `params` and `model_state` map network name -> that network's params / mutable collections (e.g.
batch_stats); only `params[update.network]` is differentiated. `metrics` maps name -> (sum, count).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import optax

Params = dict[str, Any]
ModelState = dict[str, Any]
Batch = dict[str, jax.Array]
LossFn = Callable[[Params, ModelState, Batch, jax.Array], tuple[jax.Array, tuple[dict, ModelState]]]
EvalFn = Callable[[Params, ModelState, Batch, jax.Array], dict]
SampleFn = Callable[[Params, ModelState, jax.Array, int], jax.Array | tuple[jax.Array, dict[str, jax.Array]]]


def split_samples(output) -> tuple[jax.Array, dict[str, jax.Array]]:
  """A sample_fn's output as (samples, info): info holds scalars such as the sampler's `nfe`."""
  return output if isinstance(output, tuple) else (output, {})


@dataclasses.dataclass(frozen=True)
class Update:
  """One optimizer update of `network` by `loss_fn`, run `repeats` times per train step.

  With repeats R > 1 (a GAN's n_critic), repeat i sees the microbatch of rows j with j % R == i, so the
  data loader supplies R * B examples per step and every repeat gets fresh data; that row pattern
  keeps each microbatch spread over all devices.
  """

  network: str
  loss_fn: LossFn
  repeats: int = 1


@dataclasses.dataclass(frozen=True)
class Task:
  """A model family's contract with the trainer.

  init(key, batch) -> {network: variables} with 'params' and any other collections (model state).
  optimizers: {network: optax transformation}; schedules: {network: its learning-rate schedule}
    (both from gm_jax.train.optim.make_optimizer).
  eval_fn(params, model_state, batch, key) -> metrics (sums) on a test batch with its `mask`.
  sample_fn(params, model_state, key, n) -> n samples in data space (points, or image levels HWC), or
    (samples, info) with info a dict of scalars about the sampling (e.g. `nfe`, network evaluations),
    reported beside the sample-quality metrics.
  summarize(eval_means) -> the summary fields (the likelihood ledger and any family-specific numbers).
  pictures_fn(params, model_state, key, test_batch) -> {name: images} of further pictures (e.g.
    reconstructions), saved beside the samples as samples/<name>_step_XXXXXXX.png.
  """

  init: Callable[[jax.Array, Batch], dict[str, dict[str, Any]]]
  updates: tuple[Update, ...]
  optimizers: dict[str, optax.GradientTransformation]
  eval_fn: EvalFn
  summarize: Callable[[dict[str, float]], dict[str, Any]]
  schedules: dict[str, optax.Schedule]
  sample_fn: SampleFn | None = None
  pictures_fn: Callable[[Params, ModelState, jax.Array, Batch], dict[str, jax.Array]] | None = None

  @property
  def networks(self) -> tuple[str, ...]:
    return tuple(self.optimizers)

  @property
  def examples_per_step_factor(self) -> int:
    """How many batches' worth of examples one step consumes (the largest repeats)."""
    return max(u.repeats for u in self.updates)
