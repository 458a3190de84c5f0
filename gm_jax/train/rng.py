"""Per-example PRNG keys that do not depend on how the batch is split over devices or hosts, and the fixed
keys of draws that every run must share."""

from __future__ import annotations

import jax


def per_example_keys(key: jax.Array, index_B: jax.Array) -> jax.Array:
  """fold_in(key, i) for each example's global stream position i (batch['index'])."""
  return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, index_B)


_FIXED_BRANCH = 1 << 20  # above every stream a run folds into its base key (0-4, and 100 + stream)
TEST_BINARIZATION, QUALITY_REFERENCE, QUALITY_FLOOR = range(3)


def fixed_key(purpose: int) -> jax.Array:
  """The same key in every run, for draws that define what a run is measured on (the test images' one
  binarization, the reference and floor images as the model sees them). From a branch of key(0) that no
  run draws from: key(0) itself is the base key of every run with config.seed = 0, whose per-example
  stream keys fold_in(fold_in(key(0), stream), i) it must not meet, nor fold_in(key(0), i) its streams."""
  return jax.random.fold_in(jax.random.key(0), _FIXED_BRANCH + purpose)
