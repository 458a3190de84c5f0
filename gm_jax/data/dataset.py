"""The data set handed to a task: train and test sources plus a description of one example."""

from __future__ import annotations

import dataclasses
from typing import Any

from gm_jax.data.pipeline import Source


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """What one example `x` is.

  kind: 'points' (continuous vectors), 'image' (integer levels, HWC) or 'tokens' (integer ids).
  num_levels: number of discrete values per dimension for 'image'/'tokens' (vocabulary size for
  tokens); None for continuous data. Likelihoods on discrete data are reported in bits/dim.
  """

  kind: str
  shape: tuple[int, ...]
  num_levels: int | None = None
  extras: dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def num_dims(self) -> int:
    size = 1
    for d in self.shape:
      size *= d
    return size

  @property
  def is_discrete(self) -> bool:
    return self.num_levels is not None


@dataclasses.dataclass(frozen=True)
class Dataset:
  name: str
  train: Source
  test: Source
  spec: DataSpec
  # The data's own training examples when `train` holds something else to train on (reflow's pairs, whose
  # x are a first flow's samples); None: `train` is. Sample quality's data floor and reference read them.
  real_train: Source | None = None

  @property
  def train_examples(self) -> Source:
    return self.train if self.real_train is None else self.real_train
