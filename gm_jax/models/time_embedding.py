"""The diffusion time's embedding: sinusoidal, as in the Transformer and DDPM (a class label's is
gm_jax.models.labels.embedding)."""

from __future__ import annotations

import math

import jax.numpy as jnp


def sinusoidal_embedding(t_B, dim: int, scale: float = 1000.0, max_period: float = 10000.0):
  """(B,) times in [0, 1] -> (B, dim): sin and cos of scale * t at geometric frequencies (scale 1000
  makes t = i / T match DDPM's embedding of the integer step i for T = 1000)."""
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
  args = scale * jnp.asarray(t_B, jnp.float32)[:, None] * freqs[None, :]
  emb = jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)
  return jnp.pad(emb, ((0, 0), (0, dim % 2)))
