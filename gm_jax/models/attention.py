"""Causal self-attention whose backward pass recomputes the attention from the qkv projection.

An automatic backward pass keeps, per layer, the rotated queries and keys, their transposed copies and
the (B, H, T, T) attention weights. `causal_self_attention` keeps only its input (the qkv projection,
one array) and each query's log-normalizer; the backward pass rebuilds the rest from them, as flash
attention does (the char GPT's step: 37.4 MB instead of 42.6). Also here: the rotary position
embedding (Su et al. 2021) that the Transformer applies to queries and keys.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gm_jax.models import precision


def rotary_tables(context: int, head_dim: int) -> tuple[np.ndarray, np.ndarray]:
  """Rotary position embedding tables (context, head_dim) for `rotary`: channel pairs (i, i + D/2) turn
  by angle position * 10000^(-2i/D). Built in NumPy so that they enter the graph as constants."""
  freqs = 10000.0 ** (-np.arange(head_dim // 2) * 2.0 / head_dim)
  angles = np.arange(context)[:, None] * freqs[None, :]
  cos = np.concatenate([np.cos(angles), np.cos(angles)], axis=-1)
  signed_sin = np.concatenate([-np.sin(angles), np.sin(angles)], axis=-1)
  return cos.astype(np.float32), signed_sin.astype(np.float32)


def rotary(x_BTHD: jax.Array, cos_TD, signed_sin_TD) -> jax.Array:
  """Rotates each pair (x_i, x_{i+D/2}) of every head by its position's angle (tables from
  `rotary_tables`): [x1, x2] -> [x1 cos - x2 sin, x2 cos + x1 sin], written as one multiply-add with the
  halves swapped, which XLA fuses into a single elementwise pass (and its gradient into another)."""
  half = x_BTHD.shape[-1] // 2
  swapped = jnp.concatenate([x_BTHD[..., half:], x_BTHD[..., :half]], axis=-1)
  cos, signed_sin = (jnp.asarray(a, x_BTHD.dtype)[None, :, None, :] for a in (cos_TD, signed_sin_TD))
  return x_BTHD * cos + swapped * signed_sin


def queries_keys_values(qkv_BT3HD: jax.Array, rotation=None):
  """q (scaled by 1/sqrt(D)), k and v from the qkv projection (B, T, 3, H, D); q and k turned by
  `rotation`, the (cos, signed_sin) tables of their positions (`rotary_tables`), if given."""
  q, k, v = qkv_BT3HD[:, :, 0], qkv_BT3HD[:, :, 1], qkv_BT3HD[:, :, 2]
  if rotation is not None:
    q, k = rotary(q, *rotation), rotary(k, *rotation)
  # Scale the queries, not the (T x T) scores: half the elements, and it fuses into the rotary pass.
  return q * (1.0 / np.sqrt(q.shape[-1])).astype(q.dtype), k, v


def _rotation(qkv_BT3HD: jax.Array, rotary_positions: bool):
  """The rotary tables of positions 0..T-1, or None."""
  return rotary_tables(qkv_BT3HD.shape[1], qkv_BT3HD.shape[-1]) if rotary_positions else None


def _qkv_gradient(dq, dk, dv, rotation) -> jax.Array:
  """The transpose of `queries_keys_values`, as one stacked array (its automatic transpose pads each
  of the three gradients to the whole projection's size and adds them)."""
  dq = dq * (1.0 / np.sqrt(dq.shape[-1])).astype(dq.dtype)
  if rotation is not None:  # the transpose of a rotation is the rotation back
    cos, signed_sin = rotation
    dq, dk = rotary(dq, cos, -signed_sin), rotary(dk, cos, -signed_sin)
  return jnp.stack([dq, dk, dv], axis=2)


def _causal_scores(q_BTHD, k_BSHD, dtype: Any) -> jax.Array:
  scores = precision.plain_einsum("bthd,bshd->bhts", q_BTHD, k_BSHD, dtype)
  t, s = scores.shape[-2:]
  return jnp.where(jnp.tri(t, s, dtype=bool), scores, jnp.finfo(scores.dtype).min)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def causal_self_attention(qkv_BT3HD: jax.Array, rotary_positions: bool,
                          dtype: Any = jnp.float32) -> jax.Array:
  """softmax(q k^T / sqrt(D) + causal mask) v per head, from the qkv projection (B, T, 3, H, D), with
  or without rotary positions; (B, T, H, D), float32. Matmuls in `dtype` (gm_jax.models.precision)."""
  return _attention_fwd(qkv_BT3HD, rotary_positions, dtype)[0]


def _attention_fwd(qkv, rotary_positions, dtype):
  q, k, v = queries_keys_values(qkv, _rotation(qkv, rotary_positions))
  scores = _causal_scores(q, k, dtype)
  log_normalizer = jax.nn.logsumexp(scores, axis=-1, keepdims=True)
  out = precision.plain_einsum("bhts,bshd->bthd", jnp.exp(scores - log_normalizer), v, dtype)
  return out, (qkv, log_normalizer)


def _attention_bwd(rotary_positions, dtype, residuals, g):
  qkv, log_normalizer = residuals
  # Made to depend on the incoming gradient, so that XLA neither merges the recomputation with the
  # forward pass's (which would keep its arrays after all) nor runs it before the backward pass.
  qkv = precision.after(qkv, g)
  rotation = _rotation(qkv, rotary_positions)
  q, k, v = queries_keys_values(qkv, rotation)
  weights = jnp.exp(_causal_scores(q, k, dtype) - log_normalizer)
  dv = precision.plain_einsum("bhts,bthd->bshd", weights, g, dtype)
  dweights = precision.plain_einsum("bthd,bshd->bhts", g, v, dtype)
  # Softmax's backward pass (computed from the weights rather than from the output, which then need
  # not be kept).
  dscores = weights * (dweights - jnp.sum(weights * dweights, axis=-1, keepdims=True))
  dq = precision.plain_einsum("bhts,bshd->bthd", dscores, k, dtype)
  dk = precision.plain_einsum("bhts,bthd->bshd", dscores, q, dtype)
  return (_qkv_gradient(dq, dk, dv, rotation).astype(qkv.dtype),)


causal_self_attention.defvjp(_attention_fwd, _attention_bwd)
