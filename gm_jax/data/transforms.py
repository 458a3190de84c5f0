"""Maps between integer pixel levels and the continuous or binary values models consume.

All are pure jax functions, applied inside a jitted step so that their randomness comes from the
step's PRNG key. The families that model these values add the terms that turn their densities into
likelihoods of the discrete data (see gm_jax.evaluation.ledger).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def random_horizontal_flip(key: jax.Array, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
  """Mirrors each image (B, H, W, C) left to right with probability 1/2, decided per example from
  fold_in(key, batch['index']): the same examples flip whatever the device count."""
  flip_B = jax.vmap(lambda i: jax.random.bernoulli(jax.random.fold_in(key, i)))(batch["index"])
  x = batch["x"]
  return {**batch, "x": jnp.where(flip_B[:, None, None, None], x[:, :, ::-1, :], x)}


def to_unit_interval(x_levels: jax.Array, num_levels: int) -> jax.Array:
  """Level k -> bin centre (k + 0.5) / num_levels in (0, 1)."""
  return (x_levels.astype(jnp.float32) + 0.5) / num_levels


def to_symmetric(x_levels: jax.Array, num_levels: int) -> jax.Array:
  """Level k -> 2 k / (num_levels - 1) - 1 in [-1, 1] (the DDPM/GAN convention)."""
  return 2.0 * x_levels.astype(jnp.float32) / (num_levels - 1) - 1.0


def from_symmetric(x: jax.Array, num_levels: int) -> jax.Array:
  """Inverse of `to_symmetric`, rounding and clipping to valid levels."""
  levels = jnp.round((x + 1.0) * (num_levels - 1) / 2.0)
  return jnp.clip(levels, 0, num_levels - 1).astype(jnp.int32)


def dequantize_uniform(key: jax.Array, x_levels: jax.Array, num_levels: int) -> jax.Array:
  """y = (k + u) / num_levels with u ~ U(0, 1): a continuous sample inside the level's bin.

  A density q(y) on [0, 1)^D gives a discrete likelihood bound P(k) >= q(y) * num_levels^-D, i.e.
  log P(k) >= E_u[log q(y)] - D log(num_levels).
  """
  return point_in_bin(x_levels, jax.random.uniform(key, x_levels.shape), num_levels)


def point_in_bin(x_levels: jax.Array, u: jax.Array, num_levels: int) -> jax.Array:
  """(k + u) / num_levels for u in [0, 1), kept inside level k's bin [k, k + 1) / num_levels: in float32
  k + u rounds up to k + 1 when 1 - u is below half the float spacing at k (2^-17 for 128 <= k < 256, so
  about 1 draw in 2^17 there), which put y on the next level's edge, or at 1."""
  k = x_levels.astype(jnp.float32)
  below_next_edge = jnp.nextafter((k + 1) / num_levels, jnp.float32(0))
  return jnp.minimum((k + u) / num_levels, below_next_edge)


def binarize(key: jax.Array, x_levels: jax.Array, num_levels: int) -> jax.Array:
  """Stochastic binarization: each pixel is 1 with probability level / (num_levels - 1)."""
  p = x_levels.astype(jnp.float32) / (num_levels - 1)
  return (jax.random.uniform(key, x_levels.shape) < p).astype(jnp.float32)
