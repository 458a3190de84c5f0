"""One algebra between the five things a diffusion or flow network may predict at (x_t, t).

With x_t = alpha x_0 + sigma eps:
  eps      = (x_t - alpha x_0) / sigma
  score    = grad log p(x_t) = -E[eps | x_t] / sigma          (Tweedie)
  v        = alpha eps - sigma x_0                            (Salimans & Ho 2022)
  velocity = dx_t/dt = alpha' x_0 + sigma' eps                (flow matching: Lipman et al. 2023)
and back: from v, [x_0; eps] = [[alpha, -sigma], [sigma, alpha]] [x_t; v] / (alpha^2 + sigma^2); from the
velocity, [x_0; eps] = [[sigma', -sigma], [-alpha', alpha]] [x_t; velocity] / (alpha sigma' - sigma alpha'),
which stays finite where alpha = 0 or sigma = 0 (a flow's path ends): eps and score do not.
Every loss and sampler converts the network's output with `convert`, so one trained network can be
used by all of them. The coefficients (alpha, sigma and, for the velocity, their time derivatives) are
broadcastable against x_t.
"""

from __future__ import annotations

import jax

KINDS = ("eps", "x0", "v", "score", "velocity")


def _derivatives(d_alpha, d_sigma):
  if d_alpha is None or d_sigma is None:
    raise ValueError("the velocity prediction needs the path's time derivatives d_alpha and d_sigma")
  return d_alpha, d_sigma


def to_x0_and_eps(kind: str, pred, x_t, alpha, sigma, d_alpha=None,
                  d_sigma=None) -> tuple[jax.Array, jax.Array]:
  if kind == "eps":
    return (x_t - sigma * pred) / alpha, pred
  if kind == "x0":
    return pred, (x_t - alpha * pred) / sigma
  if kind == "score":
    eps = -sigma * pred
    return (x_t - sigma * eps) / alpha, eps
  if kind == "v":
    norm = alpha**2 + sigma**2
    return (alpha * x_t - sigma * pred) / norm, (sigma * x_t + alpha * pred) / norm
  if kind == "velocity":
    d_alpha, d_sigma = _derivatives(d_alpha, d_sigma)
    det = alpha * d_sigma - sigma * d_alpha
    return (d_sigma * x_t - sigma * pred) / det, (alpha * pred - d_alpha * x_t) / det
  raise ValueError(f"unknown prediction kind {kind!r}; choose one of {KINDS}")


def convert(pred, from_kind: str, to_kind: str, x_t, alpha, sigma, d_alpha=None, d_sigma=None) -> jax.Array:
  """The network output `pred` (a `from_kind` prediction) expressed as a `to_kind` prediction."""
  if from_kind == to_kind:
    return pred
  x0, eps = to_x0_and_eps(from_kind, pred, x_t, alpha, sigma, d_alpha, d_sigma)
  if to_kind == "x0":
    return x0
  if to_kind == "eps":
    return eps
  if to_kind == "score":
    return -eps / sigma
  if to_kind == "v":
    return alpha * eps - sigma * x0
  if to_kind == "velocity":
    d_alpha, d_sigma = _derivatives(d_alpha, d_sigma)
    return d_alpha * x0 + d_sigma * eps
  raise ValueError(f"unknown prediction kind {to_kind!r}; choose one of {KINDS}")
