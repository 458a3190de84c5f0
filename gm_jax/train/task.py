"""What a model family hands the trainer: networks, their losses, evaluation and sampling.

A family adds a Task builder (gm_jax/tasks) made of its models and objectives; the trainer runs every
Task with the same loop and builds everything else from the config: optimizers and schedules (with
gradient clipping), EMA, the likelihood ledger and the data's entropy floor.
Loss functions follow one signature,

    loss_fn(params, model_state, batch, key) -> (loss, (metrics, new_model_state))

where `params` and `model_state` map network name -> that network's params / mutable collections (e.g.
batch_stats); only `params[update.network]` is differentiated. `metrics` maps name -> (sum, count).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

Params = dict[str, Any]
ModelState = dict[str, Any]
Batch = dict[str, jax.Array]
LossFn = Callable[[Params, ModelState, Batch, jax.Array], tuple[jax.Array, tuple[dict, ModelState]]]
EvalFn = Callable[[Params, ModelState, Batch, jax.Array], dict]
SampleFn = Callable[[Params, ModelState, jax.Array, int], jax.Array | tuple[jax.Array, dict[str, jax.Array]]]


def nonfinite_samples(samples: jax.Array) -> jax.Array:
  """(n,) bool, the samples holding a non-finite value: the info a sampler that rounds its samples to
  integer levels reports as `nonfinite` (the rounding would hide them)."""
  return ~jnp.all(jnp.isfinite(samples.reshape(samples.shape[0], -1)), axis=1)


def split_samples(output) -> tuple[jax.Array, dict[str, jax.Array]]:
  """A sample_fn's output as (samples, info): info holds scalars such as the sampler's `nfe`, and
  per-sample arrays (n,) such as `nonfinite`."""
  return output if isinstance(output, tuple) else (output, {})


@dataclasses.dataclass(frozen=True)
class Update:
  """One optimizer update of `network` by `loss_fn`, run `repeats` times per train step.

  With repeats R > 1 (e.g. R critic updates per generator update), repeat i sees the microbatch of
  rows j with j % R == i, so the data loader supplies R * B examples per step and every repeat gets
  fresh data; that row pattern keeps each microbatch spread over all devices.
  """

  network: str
  loss_fn: LossFn
  repeats: int = 1
  optimizer: str = "optim"  # the config block of this network's optimizer (e.g. a GAN's optim_d)


@dataclasses.dataclass(frozen=True)
class Likelihood:
  """How a Task's evaluation reports -log p(x) in the ledger (gm_jax.evaluation.ledger).

  `metric` names an eval mean, or a field of the Task's summarize, holding nats per example;
  `estimator` says which quantity it is (exact | elbo | iwae_K | vlb | ode); `num_dims` divides it into
  bits per dimension when `discrete`. `likelihood_of` says what the likelihood is of when that is not the
  data set as loaded (`ledger.likelihood_of`: "binarized data", "data given the label"), so that it is not
  read beside other models' likelihoods of the data itself.
  """

  metric: str
  estimator: str
  num_dims: int
  discrete: bool
  likelihood_of: str = ""


@dataclasses.dataclass(frozen=True)
class Task:
  """A model family's contract with the trainer.

  init(key, batch) -> {network: variables} with 'params' and any other collections (model state).
  updates: the optimizer updates of one train step, in order (each names its network).
  eval_fn(params, model_state, batch, key) -> metrics (sums) on a test batch with its `mask`; `key` is the
    same for every batch, so randomness is drawn per example from batch['index'] (gm_jax.train.rng).
  sample_fn(params, model_state, key, n) -> n samples in data space (points, or image levels HWC), or
    (samples, info) with info a dict of scalars about the sampling (e.g. `nfe`, network evaluations),
    reported beside the sample-quality metrics, and of per-sample (n,) arrays. A sampler that rounds its
    samples to integer levels reports in `nonfinite` which held a non-finite value before
    (`nonfinite_samples(x)`; the trainer then reports their quality metrics as NaN; it checks
    floating-point samples itself).
  likelihood: what the ledger reports (None: the model has no likelihood, the summary says
    estimator None); the trainer adds the data's entropy floor beside it.
  summarize(eval_means) -> further summary fields of the family (e.g. a second bound).
  pictures_fn(params, model_state, key, test_batch) -> {name: images} of further pictures (e.g.
    reconstructions), saved beside the samples as samples/<name>_step_XXXXXXX.png.
  sample_labels(n) -> the (n,) class labels a class-conditional sample_fn gives its n samples (None:
    unconditional); the sample-quality report then scores the feature classifier's accuracy on them.
  real_as_modelled(x, key) -> real examples in data space as the model sees them, when it models a
    transform of the data (a Bernoulli decoder's binarization of grey levels): the sample-quality
    reference and data floor pass through it, so that samples are judged against what they model.
  """

  init: Callable[[jax.Array, Batch], dict[str, dict[str, Any]]]
  updates: tuple[Update, ...]
  eval_fn: EvalFn
  likelihood: Likelihood | None = None
  summarize: Callable[[dict[str, float]], dict[str, Any]] | None = None
  sample_fn: SampleFn | None = None
  pictures_fn: Callable[[Params, ModelState, jax.Array, Batch], dict[str, jax.Array]] | None = None
  sample_labels: Callable[[int], np.ndarray] | None = None
  real_as_modelled: Callable[[np.ndarray, jax.Array], np.ndarray] | None = None

  @property
  def networks(self) -> tuple[str, ...]:
    """The trained networks in the order of their first update."""
    return tuple(dict.fromkeys(u.network for u in self.updates))

  @property
  def optimizer_blocks(self) -> dict[str, str]:
    """{network: the config block of its optimizer}; every update of a network must name the same one."""
    blocks: dict[str, str] = {}
    for u in self.updates:
      if blocks.setdefault(u.network, u.optimizer) != u.optimizer:
        raise ValueError(f"network {u.network!r} is updated with two optimizers, {blocks[u.network]!r} "
                         f"and {u.optimizer!r}")
    return blocks

  @property
  def updates_per_step(self) -> dict[str, int]:
    """{network: its optimizer updates per train step} (the repeats of all its updates)."""
    counts: dict[str, int] = {}
    for u in self.updates:
      counts[u.network] = counts.get(u.network, 0) + u.repeats
    return counts

  @property
  def examples_per_step_factor(self) -> int:
    """How many batches' worth of examples one step consumes (the largest repeats)."""
    return max(u.repeats for u in self.updates)
