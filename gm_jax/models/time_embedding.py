"""Embeddings of the conditioning: the diffusion time (sinusoidal, as in the Transformer and DDPM) and a
class label (learned)."""

from __future__ import annotations

import math

import flax.linen as nn
import jax.numpy as jnp


def sinusoidal_embedding(t_B, dim: int, scale: float = 1000.0, max_period: float = 10000.0):
  """(B,) times in [0, 1] -> (B, dim): sin and cos of scale * t at geometric frequencies (scale 1000
  makes t = i / T match DDPM's embedding of the integer step i for T = 1000)."""
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
  args = scale * jnp.asarray(t_B, jnp.float32)[:, None] * freqs[None, :]
  emb = jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)
  return jnp.pad(emb, ((0, 0), (0, dim % 2)))


def label_embedding(num_classes: int, dim: int, label_B):
  """(B,) labels in [0, num_classes] -> (B, dim) learned embeddings, num_classes standing for "no label"
  (the unconditional model of classifier-free guidance); 0 when the network is unconditional
  (num_classes = 0). Call inside a compact module: the table is that module's parameter."""
  if num_classes == 0:
    if label_B is not None:
      raise ValueError("labels were given to an unconditional network; set model.num_classes")
    return 0.0
  if label_B is None:
    raise ValueError(f"a network conditioned on {num_classes} classes needs labels")
  return nn.Embed(num_classes + 1, dim, name="label_embedding")(jnp.asarray(label_B, jnp.int32))
