"""A network's output at (x_t, t), read through the parameterization algebra as any prediction kind."""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax

from gm_jax.diffusion import parameterization
from gm_jax.diffusion.processes import Process, expand


@dataclasses.dataclass(frozen=True)
class Denoiser:
  """apply_fn(x_t (B, ...), t (B,)) -> the network's `kind` prediction, under `process`.

  A class-conditional denoiser holds its examples' (B,) `labels` and calls apply_fn(x_t, t, labels), so that
  a computation that splits the batch (per-example adaptive ODE solves, per-example bounds) can give each
  example its own label (`with_labels`).
  """

  apply_fn: Callable[..., jax.Array]
  kind: str
  process: Process
  labels: jax.Array | None = None

  def with_labels(self, labels) -> Denoiser:
    return dataclasses.replace(self, labels=labels)

  def _apply(self, x_t, t) -> jax.Array:
    return self.apply_fn(x_t, t) if self.labels is None else self.apply_fn(x_t, t, self.labels)

  def coefficients(self, x_t, t, with_derivatives: bool = False):
    """(alpha, sigma), and their time derivatives when asked for (a velocity needs them), broadcast
    against x_t."""
    p = self.process
    fns = (p.alpha, p.sigma, p.d_alpha, p.d_sigma) if with_derivatives else (p.alpha, p.sigma)
    return tuple(expand(fn(t), x_t) for fn in fns)

  def predict(self, x_t, t, to_kind: str) -> jax.Array:
    c = self.coefficients(x_t, t, "velocity" in (self.kind, to_kind))
    return parameterization.convert(self._apply(x_t, t), self.kind, to_kind, x_t, *c)

  def x0_and_eps(self, x_t, t) -> tuple[jax.Array, jax.Array]:
    c = self.coefficients(x_t, t, self.kind == "velocity")
    return parameterization.to_x0_and_eps(self.kind, self._apply(x_t, t), x_t, *c)

  def score(self, x_t, t) -> jax.Array:
    return self.predict(x_t, t, "score")

  def velocity(self, x_t, t) -> jax.Array:
    """dx_t/dt of the probability-flow ODE: alpha' E[x_0 | x_t] + sigma' E[eps | x_t]."""
    return self.predict(x_t, t, "velocity")
