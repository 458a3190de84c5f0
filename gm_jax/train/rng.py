"""Per-example PRNG keys that do not depend on how the batch is split over devices or hosts."""

from __future__ import annotations

import jax


def per_example_keys(key: jax.Array, index_B: jax.Array) -> jax.Array:
  """fold_in(key, i) for each example's global stream position i (batch['index'])."""
  return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, index_B)
