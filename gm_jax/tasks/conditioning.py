"""Class conditioning shared by the families: the labels a conditional model trains on and samples with.

A family is class-conditional when config.model.num_classes > 0: it reads the data's integer `label` in
[0, num_classes) in training and evaluation (its likelihood is then log p(x | label)), and draws its samples
in equal contiguous runs of each class (`class_runs`), which the trainer's quality report reads back through
Task.sample_labels to score the samples' class accuracy; a square sample grid then shows one row per class.
"""

from __future__ import annotations

import numpy as np

from gm_jax.data.dataset import Dataset


def num_classes(config, dataset: Dataset) -> int:
  """config.model.num_classes, checked against the data: 0 (unconditional) or > 0 with labels present,
  and equal to the data's label count where it is known (digits, TFDS class sets, own data)."""
  count = config.model.num_classes
  if count < 0:
    raise ValueError(f"model.num_classes must be >= 0 (0: unconditional); got {count}")
  if count and "label" not in dataset.train[np.arange(1)]:
    raise ValueError(f"model.num_classes={count} conditions on labels, which data {dataset.name!r} "
                     f"lacks; set model.num_classes=0")
  present = dataset.spec.extras.get("num_classes", 0)
  if count and not present:  # data that does not state its classes (a hand-built Dataset)
    _check_label_range(dataset, count)
  if count and present and count != present:
    why = ("a label outside [0, num_classes) would be no class at all" if count < present else
           f"classes {present} to {count - 1} would have no data to learn them from")
    raise ValueError(f"data {dataset.name!r} has labels up to {present - 1}, but model.num_classes={count} "
                     f"({why}); set model.num_classes={present}")
  return count


def _check_label_range(dataset: Dataset, count: int) -> None:
  """In-memory labels must index the classes: a label outside [0, count) would be one-hot encoded as no
  class at all, and the model would train on it unconditioned without a word."""
  for split, source in (("train", dataset.train), ("test", dataset.test)):
    labels = getattr(source, "arrays", {}).get("label")
    if labels is None or not len(labels):
      continue
    low, high = int(np.min(labels)), int(np.max(labels))
    if low < 0 or high >= count:
      fix = f"set model.num_classes={high + 1}" if low >= 0 else f"number the classes 0 to {count - 1}"
      raise ValueError(f"data {dataset.name!r} has {split} labels from {low} to {high}, outside 0 to "
                       f"{count - 1} (model.num_classes={count}); {fix}")


def class_runs(n: int, count: int) -> np.ndarray:
  """n labels in equal contiguous runs of each of `count` classes (one row per class in a square grid)."""
  return (np.arange(n) * count // n).astype(np.int32)


def use_classes(config, count: int) -> None:
  """Makes a config class-conditional on `count` classes, with a square sample grid of one row per class."""
  config.model.num_classes = count
  config.train.num_samples = count * count
