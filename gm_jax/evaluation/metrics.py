"""Metrics as (sum, count) pairs, so averages stay exact across batches, devices and hosts."""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from gm_jax.objectives.sums import masked_mean  # noqa: F401  (losses report metrics through it too)

Metrics = dict[str, tuple[jax.Array, jax.Array]]


def scalar(value: jax.Array) -> tuple[jax.Array, jax.Array]:
  """A per-step scalar (a loss, a gradient norm): averaged over the steps it is logged for."""
  return jnp.asarray(value, jnp.float32), jnp.float32(1.0)


def add(a: Metrics, b: Metrics) -> Metrics:
  return {k: (a[k][0] + b[k][0], a[k][1] + b[k][1]) for k in a}


class Accumulator:
  """Host-side float64 running sums of (sum, count) metrics; `means()` divides."""

  def __init__(self, sums: Mapping[str, list[float]] | None = None):
    self._sums: dict[str, list[float]] = {name: list(pair) for name, pair in (sums or {}).items()}

  def sums(self) -> dict[str, list[float]]:
    """{name: [sum, count]}, JSON-ready: a checkpoint carries a log window that is not complete yet."""
    return {name: list(pair) for name, pair in self._sums.items()}

  def add(self, metrics: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
    for name, pair in jax.device_get(dict(metrics)).items():
      if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
        raise ValueError(f"metric {name!r} is not a (sum, count) pair; return metrics as pairs "
                         f"(gm_jax.objectives.sums.masked_mean, or metrics.scalar for one value per step)")
      total, count = pair
      acc = self._sums.setdefault(name, [0.0, 0.0])
      acc[0] += float(np.sum(total, dtype=np.float64))
      acc[1] += float(np.sum(count, dtype=np.float64))

  def means(self) -> dict[str, float]:
    return {name: total / count for name, (total, count) in self._sums.items() if count > 0}

  def reset(self) -> None:
    self._sums.clear()
