"""scikit-learn's 8x8 handwritten digits: the offline image default (1,797 images, 17 grey levels).

Pixels are integers 0..16. The train/test split is fixed (a seeded permutation, 1,497 / 300 images),
so numbers reported on digits are comparable across runs and models.
"""

from __future__ import annotations

import numpy as np

from gm_jax.data.dataset import DataSpec, Dataset
from gm_jax.data.pipeline import ArraySource

NUM_LEVELS = 17
NUM_TEST = 300
_SPLIT_SEED = 20_240_501


def load_arrays() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
  """Returns (train, test) dicts with `x` (N, 8, 8, 1) uint8 levels in [0, 16] and `label` (N,)."""
  from sklearn.datasets import load_digits  # imported here: only this data set needs scikit-learn

  bunch = load_digits()
  images = bunch.images.astype(np.uint8)[..., None]
  labels = bunch.target.astype(np.int32)
  order = np.random.default_rng(_SPLIT_SEED).permutation(len(images))
  test_idx, train_idx = np.sort(order[:NUM_TEST]), np.sort(order[NUM_TEST:])
  return ({"x": images[train_idx], "label": labels[train_idx]},
          {"x": images[test_idx], "label": labels[test_idx]})


def load() -> Dataset:
  train, test = load_arrays()
  return Dataset("digits", ArraySource(train), ArraySource(test),
                 DataSpec(kind="image", shape=(8, 8, 1), num_levels=NUM_LEVELS, extras={"num_classes": 10}))
