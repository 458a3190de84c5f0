"""Monotone rational-quadratic splines with linear tails (Durkan et al. 2019, "Neural Spline Flows").

On [-B, B] the map is a piecewise rational-quadratic function through K + 1 knots (x_k, y_k) with
positive slopes delta_k at the knots (Gregory & Delbourgo 1982); outside [-B, B] it is the identity,
and the boundary slopes are 1 so the map and its derivative are continuous at +-B. In bin k, with
w_k = x_{k+1} - x_k, h_k = y_{k+1} - y_k, s_k = h_k / w_k and xi = (x - x_k) / w_k in [0, 1]:

  y = y_k + h_k [s_k xi^2 + delta_k xi (1 - xi)] / [s_k + (delta_{k+1} + delta_k - 2 s_k) xi (1 - xi)]
  dy/dx = s_k^2 [delta_{k+1} xi^2 + 2 s_k xi (1 - xi) + delta_k (1 - xi)^2]
          / [s_k + (delta_{k+1} + delta_k - 2 s_k) xi (1 - xi)]^2

The inverse solves a quadratic in xi exactly (the root in [0, 1]). `SplineCoupling` is the coupling
layer of NSF in the bijector protocol of gm_jax.models.bijectors.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gm_jax.models import bijectors

DEFAULT_MIN_BIN_WIDTH = 1e-3
DEFAULT_MIN_BIN_HEIGHT = 1e-3
DEFAULT_MIN_DERIVATIVE = 1e-3


def num_spline_params(num_bins: int) -> int:
  """Unconstrained parameters per transformed scalar: K widths, K heights, K - 1 interior slopes."""
  return 3 * num_bins - 1


def _knots(raw_NK: jax.Array, bound: float, min_size: float) -> tuple[jax.Array, jax.Array]:
  """Bin sizes min + (1 - K min) softmax(raw), scaled to [-B, B]; returns (sizes_NK, knots_N(K+1))."""
  num_bins = raw_NK.shape[-1]
  if min_size * num_bins >= 1.0:
    raise ValueError(f"minimum bin size {min_size} times {num_bins} bins must be < 1")
  frac_NK = min_size + (1.0 - min_size * num_bins) * jax.nn.softmax(raw_NK, axis=-1)
  cum_NK = jnp.cumsum(frac_NK, axis=-1)
  knots = 2 * bound * jnp.concatenate([jnp.zeros_like(cum_NK[..., :1]), cum_NK], axis=-1) - bound
  knots = knots.at[..., 0].set(-bound).at[..., -1].set(bound)  # exact ends despite rounding
  return knots[..., 1:] - knots[..., :-1], knots


def spline_knots(params_NP: jax.Array, bound: float, min_bin_width: float = DEFAULT_MIN_BIN_WIDTH,
                 min_bin_height: float = DEFAULT_MIN_BIN_HEIGHT,
                 min_derivative: float = DEFAULT_MIN_DERIVATIVE):
  """Unconstrained (..., 3K - 1) parameters -> knot x, knot y (..., K + 1) and slopes (..., K + 1).

  Interior slopes are min_derivative + softplus(raw + c), with c chosen so raw = 0 gives slope 1: zero
  parameters give equal bins and unit slopes, the identity.
  """
  num_bins = (params_NP.shape[-1] + 1) // 3
  raw_w, raw_h, raw_d = (params_NP[..., :num_bins], params_NP[..., num_bins:2 * num_bins],
                         params_NP[..., 2 * num_bins:])
  _, x_knots = _knots(raw_w, bound, min_bin_width)
  _, y_knots = _knots(raw_h, bound, min_bin_height)
  offset = math.log(math.expm1(1.0 - min_derivative))
  inner = min_derivative + jax.nn.softplus(raw_d + offset)
  # Boundary slopes 1: continuous with the linear tails (shaped from `inner`'s batch axes, since one bin
  # has no interior slope to take them from).
  ones = jnp.ones((*inner.shape[:-1], 1), inner.dtype)
  return x_knots, y_knots, jnp.concatenate([ones, inner, ones], axis=-1)


def _gather(a_NK: jax.Array, index_N: jax.Array) -> jax.Array:
  return jnp.take_along_axis(a_NK, index_N[..., None], axis=-1)[..., 0]


def rational_quadratic_spline(x_N: jax.Array, params_NP: jax.Array, bound: float, inverse: bool = False,
                              min_bin_width: float = DEFAULT_MIN_BIN_WIDTH,
                              min_bin_height: float = DEFAULT_MIN_BIN_HEIGHT,
                              min_derivative: float = DEFAULT_MIN_DERIVATIVE):
  """Elementwise y = g(x) (or x = g^-1(y) with inverse=True) and log |dg/dx| of the direction run.

  x_N: any shape (...); params_NP: (..., 3K - 1). Outside [-B, B] the map is the identity (log-det 0).
  """
  x_knots, y_knots, slopes = spline_knots(params_NP, bound, min_bin_width, min_bin_height, min_derivative)
  inside = (x_N > -bound) & (x_N < bound)
  x = jnp.clip(x_N, -bound, bound)  # the tails' values never reach the spline's formulas (finite grads)
  search = y_knots if inverse else x_knots
  # Bin index: how many interior knots lie at or below x.
  k = jnp.sum(x[..., None] >= search[..., 1:-1], axis=-1)
  xk, yk = _gather(x_knots, k), _gather(y_knots, k)
  wk, hk = _gather(x_knots, k + 1) - xk, _gather(y_knots, k + 1) - yk
  dk, dk1 = _gather(slopes, k), _gather(slopes, k + 1)
  sk = hk / wk
  curv = dk1 + dk - 2 * sk
  if inverse:
    dy, up = x - yk, _gather(y_knots, k + 1) - x  # both >= 0
    b = hk * dk - dy * curv
    c = -sk * dy
    # b^2 - 4ac (a = hk (sk - dk) + dy curv) written as a sum of non-negative terms: the difference
    # cancels near a bin's top knot, where it is far smaller than either term, and a rounded zero or
    # negative value there gave a NaN log-det and gradient.
    disc = (dk * up - dk1 * dy) ** 2 + 4 * sk**2 * dy * up
    # The root in [0, 1], in the form that adds rather than cancels: 2c / (-b - sqrt) when b >= 0 (also
    # stable for a -> 0), (-b + sqrt) / 2a when b < 0 (below a steep knot atop a flat bin; a root in
    # [0, 1] then has a >= -b > 0). Each branch's denominator is guarded so the untaken one stays finite.
    a = hk * (sk - dk) + dy * curv
    sqrt_disc, b_nonneg = jnp.sqrt(disc), b >= 0
    xi = jnp.where(b_nonneg, (2 * c) / jnp.where(b_nonneg, -b - sqrt_disc, -1.0),
                   (-b + sqrt_disc) / (2 * jnp.where(b_nonneg, 1.0, a)))
    out = xi * wk + xk
  else:
    xi = (x - xk) / wk
  one_m = xi * (1 - xi)
  denom = sk + curv * one_m
  deriv = sk**2 * (dk1 * xi**2 + 2 * sk * one_m + dk * (1 - xi) ** 2) / denom**2
  log_det = jnp.log(deriv)
  if not inverse:
    out = yk + hk * (sk * xi**2 + dk * one_m) / denom
  else:
    log_det = -log_det
  return jnp.where(inside, out, x_N), jnp.where(inside, log_det, 0.0)


class SplineCoupling(nn.Module):
  """NSF's coupling: y = m * x + (1 - m) * g(x; theta), theta = net(m * x [, cond]), g a RQ spline.

  The conditioner outputs 3K - 1 values per dimension (zero-initialized: the layer starts as the
  identity). log |det| = sum over the changed dims of log g'(x).
  """

  mask: np.ndarray
  conditioner: nn.Module
  num_bins: int = 8
  bound: float = 3.0

  @nn.compact
  def __call__(self, x, inverse: bool = False, cond=None):
    m = jnp.asarray(self.mask)
    params = bijectors.masked_conditioner(self.conditioner, x, m, cond)
    y, log_det = rational_quadratic_spline(x, params, self.bound, inverse)
    keep = m.astype(bool)
    y = jnp.where(keep, x, y)
    log_det = jnp.where(keep, 0.0, log_det)
    return y, jnp.sum(log_det.reshape(x.shape[0], -1), axis=-1)
