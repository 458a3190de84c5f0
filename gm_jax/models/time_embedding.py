"""The diffusion time's embedding: sinusoidal, as in the Transformer and DDPM (a class label's is
gm_jax.models.labels.embedding)."""

from __future__ import annotations

import math

import jax.numpy as jnp


TIME_SCALE = 1000.0  # a time t in [0, 1] is embedded as TIME_SCALE * t: DDPM's integer steps for T = 1000


def sinusoidal_embedding(t_B, dim: int, scale: float = TIME_SCALE, max_period: float = 10000.0):
  """(B,) times in [0, 1] -> (B, dim): sin and cos of scale * t at the geometric frequencies
  max_period^(-j / half), j < half = dim // 2 (the Transformer's; DDPM's code divides by half - 1, so its
  lowest frequency is 1 / max_period rather than slightly above it). Scale 1000 puts t = i / T on DDPM's
  integer steps i for T = 1000."""
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
  args = scale * jnp.asarray(t_B, jnp.float32)[:, None] * freqs[None, :]
  emb = jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)
  return jnp.pad(emb, ((0, 0), (0, dim % 2)))
