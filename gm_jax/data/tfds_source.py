"""TFDS image data sets through `tfds.data_source` (random access to array_record files, no TensorFlow).

Prepare a data set once on a machine with network access:
  tfds build mnist --file_format=array_record [--data_dir=DIR]
Offline, a missing data set is reported in one line that says this; a name TFDS does not know is
reported as unknown.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from gm_jax.data.dataset import DataSpec, Dataset


@dataclasses.dataclass(frozen=True)
class ImageSetInfo:
  test_split: str
  num_levels: int
  feature: str = "image"
  num_classes: int = 0  # of its `label` (0: none)


IMAGE_SETS: dict[str, ImageSetInfo] = {
    "mnist": ImageSetInfo("test", 256, num_classes=10),
    "binarized_mnist": ImageSetInfo("test", 2),
    "fashion_mnist": ImageSetInfo("test", 256, num_classes=10),
    "cifar10": ImageSetInfo("test", 256, num_classes=10),
    "celeb_a": ImageSetInfo("test", 256),
}


def is_registered(name: str) -> bool:
  """Whether TFDS knows a builder of this name (`name`, `name:version` or `name/config`)."""
  import tensorflow_datasets as tfds

  try:
    tfds.builder_cls(name.split(":")[0].split("/")[0])
  except tfds.core.DatasetNotFoundError:
    return False
  return True


def open_split(name: str, split: str, data_dir: str | None) -> Sequence[dict[str, Any]]:
  """`tfds.data_source(name, split)` without downloading; a missing data set raises one clear line."""
  import tensorflow_datasets as tfds

  try:
    return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
  except Exception as e:  # tfds raises several unrelated types for "not prepared"
    where = data_dir or "~/tensorflow_datasets"
    if not is_registered(name):
      raise ValueError(f"unknown TFDS data set {name!r}: it is not in the TFDS catalog "
                       f"(https://www.tensorflow.org/datasets/catalog) nor prepared in {where}; "
                       f"check the name") from None
    raise FileNotFoundError(
        f"TFDS data set {name!r} (split {split!r}) is not prepared in {where}: on a machine with network "
        f"run `tfds build {name} --file_format=array_record --data_dir={where}` or set data.data_dir "
        f"({type(e).__name__})") from None


def prepared_splits(name: str, data_dir: str | None) -> list[str]:
  """The splits a prepared data set has, train, validation and test first; the three when TFDS lists
  none (a set not prepared, whose opening then reports it, or mocked data)."""
  import tensorflow_datasets as tfds

  canonical = ["train", "validation", "test"]
  try:
    listed = list(tfds.builder(name, data_dir=data_dir).info.splits.keys())
  except Exception:  # not in the catalog nor prepared: open_split says which
    return canonical
  if not listed:
    return canonical
  return [s for s in canonical if s in listed] + sorted(s for s in listed if s not in canonical)


def center_crop_resize(image_HWC: np.ndarray, crop: int, size: int) -> np.ndarray:
  """Centre crop to crop x crop, then bilinear resize to size x size (the DCGAN CelebA preprocessing;
  crop == size: the crop alone)."""
  from PIL import Image

  h, w = image_HWC.shape[:2]
  top, left = (h - crop) // 2, (w - crop) // 2
  patch = image_HWC[top:top + crop, left:left + crop]
  if crop == size:
    return patch
  resized = Image.fromarray(patch.squeeze(-1) if patch.shape[-1] == 1 else patch).resize(
      (size, size), Image.BILINEAR)
  return np.asarray(resized).reshape(size, size, image_HWC.shape[-1])


@dataclasses.dataclass(frozen=True)
class TfdsImageSource:
  """Random-access image source: `x` holds uint8 levels (HWC), `label` the class when there is one."""

  records: Sequence[dict[str, Any]]
  feature: str
  crop: int = 0
  size: int = 0
  binary: bool = False

  def __len__(self) -> int:
    return len(self.records)

  def __getitem__(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    examples = [self.records[int(i)] for i in indices]
    images = [np.asarray(ex[self.feature]) for ex in examples]
    if self.size or self.crop:
      images = [center_crop_resize(im, self.crop or min(im.shape[:2]), self.size or self.crop)
                for im in images]
    x = np.stack(images)
    if self.binary:
      x = x > 0  # binary images are stored as 0/1 or as 0/255 depending on the export
    batch = {"x": x.astype(np.uint8)}
    if "label" in examples[0]:
      batch["label"] = np.asarray([ex["label"] for ex in examples], np.int32)
    return batch


def load(name: str, data_dir: str | None = None, crop: int = 0, size: int = 0) -> Dataset:
  if name not in IMAGE_SETS:
    raise ValueError(f"unknown TFDS image data set {name!r}; choose one of {sorted(IMAGE_SETS)}")
  info = IMAGE_SETS[name]
  binary = info.num_levels == 2
  if crop < 0 or size < 0:
    raise ValueError(f"data.crop={crop} and data.image_size={size} must be >= 0 (0: the stored images)")
  train_records = open_split(name, "train", data_dir)
  stored = np.asarray(train_records[0][info.feature]).shape[:2]
  if crop > min(stored):
    raise ValueError(f"data.crop={crop} is larger than {name}'s {stored[0]}x{stored[1]} images; set "
                     f"data.crop to at most {min(stored)} (or 0: no crop)")
  train = TfdsImageSource(train_records, info.feature, crop, size, binary)
  test = TfdsImageSource(open_split(name, info.test_split, data_dir), info.feature, crop, size, binary)
  shape = train[np.array([0])]["x"].shape[1:]
  extras = {"num_classes": info.num_classes} if info.num_classes else {}
  return Dataset(name, train, test, DataSpec(kind="image", shape=tuple(shape), num_levels=info.num_levels,
                                             extras=extras))
