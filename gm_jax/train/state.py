"""TrainState: everything a checkpoint must hold to continue a run exactly."""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class NetworkState:
  """One network: params, optimizer state, mutable model collections (e.g. batch_stats), EMA params."""

  params: Any
  opt_state: Any
  model_state: dict[str, Any]
  ema_params: Any  # None when EMA is off


@flax.struct.dataclass
class TrainState:
  """The step counter, the networks, and the non-finite guard.

  `nonfinite_step` is -1 until a loss, gradient norm or update norm is non-finite; then it holds that
  step and `nonfinite_metric` the index of the metric in the trainer's guard list. A non-finite update is not
  applied, so the state stays the last good one.
  """

  step: jax.Array
  networks: dict[str, NetworkState]
  nonfinite_step: jax.Array
  nonfinite_metric: jax.Array

  def params(self, use_ema: bool = False) -> dict[str, Any]:
    return {name: (net.ema_params if use_ema and net.ema_params is not None else net.params)
            for name, net in self.networks.items()}

  def model_state(self) -> dict[str, Any]:
    return {name: net.model_state for name, net in self.networks.items()}


def create(variables: dict[str, dict[str, Any]], optimizers: dict[str, Any], use_ema: bool) -> TrainState:
  networks = {}
  if not set(optimizers) <= set(variables):
    raise ValueError(f"the task's init returned {sorted(variables)} where the trainer expects its networks "
                     f"{sorted(optimizers)}; return {{network: variables}}")
  for name, tx in optimizers.items():
    collections = dict(variables[name])
    if "params" not in collections:
      raise ValueError(f"the task's init gave network {name!r} the collections {sorted(collections)}, "
                       f"without 'params'")
    params = collections.pop("params")
    networks[name] = NetworkState(params=params, opt_state=tx.init(params), model_state=collections,
                                  ema_params=jax.tree.map(jnp.copy, params) if use_ema else None)
  return TrainState(step=jnp.int32(0), networks=networks, nonfinite_step=jnp.int32(-1),
                    nonfinite_metric=jnp.int32(-1))
