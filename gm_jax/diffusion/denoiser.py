"""A network's output at (x_t, t), read through the parameterization algebra as any prediction kind."""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax

from gm_jax.diffusion import parameterization
from gm_jax.diffusion.processes import Process, expand


@dataclasses.dataclass(frozen=True)
class Denoiser:
  """apply_fn(x_t (B, ...), t (B,)) -> the network's `kind` prediction, under `process`."""

  apply_fn: Callable[[jax.Array, jax.Array], jax.Array]
  kind: str
  process: Process

  def coefficients(self, x_t, t):
    return expand(self.process.alpha(t), x_t), expand(self.process.sigma(t), x_t)

  def predict(self, x_t, t, to_kind: str) -> jax.Array:
    alpha, sigma = self.coefficients(x_t, t)
    return parameterization.convert(self.apply_fn(x_t, t), self.kind, to_kind, x_t, alpha, sigma)

  def x0_and_eps(self, x_t, t) -> tuple[jax.Array, jax.Array]:
    alpha, sigma = self.coefficients(x_t, t)
    return parameterization.to_x0_and_eps(self.kind, self.apply_fn(x_t, t), x_t, alpha, sigma)

  def score(self, x_t, t) -> jax.Array:
    return self.predict(x_t, t, "score")
