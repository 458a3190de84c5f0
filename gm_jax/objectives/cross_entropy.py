"""Cross-entropy of next-token prediction (seed 000): the exact negative log-likelihood of a sequence,
-log p(x) = -sum_t log p(x_t | x_<t), reported per token."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def token_nll(logits_BTV: jax.Array, targets_BT: jax.Array) -> jax.Array:
  """-log softmax(logits)[target] per position, (B, T)."""
  log_probs = jax.nn.log_softmax(logits_BTV.astype(jnp.float32), axis=-1)
  return -jnp.take_along_axis(log_probs, targets_BT[..., None], axis=-1)[..., 0]


def sums(nll_BT: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(sum of the NLL over the scored tokens, number of those tokens); mask (B,) marks the real examples,
  (B, T) the scored tokens."""
  weights = jnp.broadcast_to(mask[:, None] if mask.ndim == 1 else mask, nll_BT.shape)
  return jnp.sum(nll_BT * weights), jnp.sum(weights)
