"""Per-example values as (sum, count) pairs: losses and metrics stay exact means across batches and
devices."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def masked_mean(values_B: jax.Array, mask_B: jax.Array) -> tuple[jax.Array, jax.Array]:
  """A per-example metric: (sum over real examples, number of real examples)."""
  return jnp.sum(values_B * mask_B), jnp.sum(mask_B)
