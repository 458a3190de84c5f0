"""The fixed train/test split of users' own data when it comes without one, and the fixed subsets of a
split that the sample-quality metrics compare with.

The split is a permutation drawn with a constant seed, not with data.seed, so every run (and every
model) on the same files is evaluated on the same test examples; data.seed only changes the order in
which training examples are visited.
"""

from __future__ import annotations

import numpy as np

DEFAULT_TEST_FRACTION = 0.1
_SPLIT_SEED = 20_240_502
_SUBSET_SEED = 20_261_205


def check_no_test_fraction(test_fraction: float, why: str) -> None:
  """Refuses data.test_fraction set beside a split of the data's own, which it would not change."""
  if test_fraction != DEFAULT_TEST_FRACTION:
    raise ValueError(f"data.test_fraction={test_fraction} is set, but {why}, a split of its own; leave "
                     f"data.test_fraction at {DEFAULT_TEST_FRACTION}")


def seeded_split(n: int, test_fraction: float, what: str, alternative: str) -> tuple[np.ndarray, np.ndarray]:
  """(train_indices, test_indices), each sorted: round(n * test_fraction) examples go to the test split.

  what names the data in errors (e.g. "image folder 'faces' has 12 images"); alternative says how to
  give an explicit split instead.
  """
  if not 0.0 < test_fraction < 1.0:
    raise ValueError(f"data.test_fraction must lie strictly between 0 and 1, got {test_fraction}")
  num_test = int(round(n * test_fraction))
  if num_test < 1 or num_test >= n:
    raise ValueError(f"{what}: too few for a train/test split with data.test_fraction={test_fraction} "
                     f"(needs at least one training and one test example); add examples, change "
                     f"data.test_fraction or {alternative}")
  order = np.random.default_rng(_SPLIT_SEED).permutation(n)
  return np.sort(order[num_test:]), np.sort(order[:num_test])


def fixed_subset(n: int, k: int) -> np.ndarray:
  """Sorted indices of k of a split's n examples (all of them when k >= n), drawn with a constant seed: a
  split stored in class order (class folders, sorted arrays) would give a first-k reference or data floor
  of its first classes only."""
  if k >= n:
    return np.arange(n)
  return np.sort(np.random.default_rng(_SUBSET_SEED).choice(n, k, replace=False))
