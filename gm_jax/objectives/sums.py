"""Per-example values as (sum, count) pairs: losses and metrics stay exact means across batches and
devices."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def masked_mean(values_B: jax.Array, mask_B: jax.Array) -> tuple[jax.Array, jax.Array]:
  """A per-example metric: (sum over real examples, number of real examples). A padding row's value is left
  out, not multiplied by 0: the row repeats a real example with draws of its own (dequantization noise,
  probes), on which e.g. an adaptive ODE solve may fail with NaN where the real example's did not."""
  return jnp.sum(jnp.where(mask_B != 0, values_B * mask_B, 0.0)), jnp.sum(mask_B)
