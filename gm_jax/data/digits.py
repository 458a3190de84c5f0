"""scikit-learn's 8x8 handwritten digits: the offline image default (1,797 images, 17 grey levels).

Pixels are integers 0..16. The train/test split is fixed (a seeded permutation, 1,497 / 300 images),
so numbers reported on digits are comparable across runs and models.
"""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np

from gm_jax.data.dataset import DataSpec, Dataset
from gm_jax.data.pipeline import ArraySource

NUM_LEVELS = 17
NUM_TEST = 300
_SPLIT_SEED = 20_240_501


def table_file() -> pathlib.Path | None:
  """The table scikit-learn's `load_digits` reads (one row per image: 64 pixels, then the label), found
  without importing scikit-learn; None if this version keeps it elsewhere."""
  spec = importlib.util.find_spec("sklearn")
  if spec is None or not spec.submodule_search_locations:
    return None
  path = pathlib.Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
  return path if path.is_file() else None


def _load_table() -> np.ndarray:
  """(1797, 65): each image's 64 pixels and its label. Read from the file itself: importing scikit-learn
  (for `load_digits`) cost every digits process 1-2 s."""
  path = table_file()
  if path is not None:
    return np.loadtxt(path, delimiter=",")
  from sklearn.datasets import load_digits

  bunch = load_digits()
  return np.column_stack([bunch.data, bunch.target])


def load_arrays() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
  """Returns (train, test) dicts with `x` (N, 8, 8, 1) uint8 levels in [0, 16] and `label` (N,)."""
  table = _load_table()
  images = table[:, :64].reshape(-1, 8, 8, 1).astype(np.uint8)
  labels = table[:, 64].astype(np.int32)
  order = np.random.default_rng(_SPLIT_SEED).permutation(len(images))
  test_idx, train_idx = np.sort(order[:NUM_TEST]), np.sort(order[NUM_TEST:])
  return ({"x": images[train_idx], "label": labels[train_idx]},
          {"x": images[test_idx], "label": labels[test_idx]})


def load() -> Dataset:
  train, test = load_arrays()
  return Dataset("digits", ArraySource(train), ArraySource(test),
                 DataSpec(kind="image", shape=(8, 8, 1), num_levels=NUM_LEVELS, extras={"num_classes": 10}))
