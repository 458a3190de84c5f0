"""Arrays in a .npy or .npz file as a data set (data.name='npz', data.path=FILE).

FILE is a .npy holding `x`, or a .npz holding `x` and optionally `label` (one integer per example),
`x_test` and `label_test`. Without `x_test`, a fixed seeded split holds out data.test_fraction of the
examples (see gm_jax.data.split). What `x` is follows from its dtype and shape:
  integer or bool (N, H, W) or (N, H, W, C), C in {1, 3}: images (kind 'image', HWC levels).
    Levels: data.num_levels when set (the stored values must lie in [0, num_levels); they are not
    requantized); else 2 for bool, 256 for uint8, and the largest value + 1 for other integer dtypes.
  float (N, D): points (kind 'points', continuous), delivered as float32.
A float array of images is refused: quantize it to integer levels or flatten it to (N, D) points.

A .npy file is memory-mapped, so an array larger than memory is read one batch at a time; the arrays of
a .npz are read into memory when loading (np.load cannot memory-map zip members).
"""

from __future__ import annotations

import dataclasses
import pathlib
import zipfile
import zlib

import numpy as np
from absl import logging

from gm_jax.data import split as split_lib
from gm_jax.data.dataset import DataSpec, Dataset
from gm_jax.data.pipeline import digest

KEYS = ("x", "label", "x_test", "label_test")


@dataclasses.dataclass(frozen=True)
class RowSource:
  """Rows `rows` of arrays that may be memory-mapped; each key is cast to `dtypes[key]` and reshaped to
  (len(indices), *shapes[key]) per batch, so a split never copies the whole array."""

  arrays: dict[str, np.ndarray]
  rows: np.ndarray
  dtypes: dict[str, np.dtype]
  shapes: dict[str, tuple[int, ...]]

  def __len__(self) -> int:
    return len(self.rows)

  def __getitem__(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    rows = self.rows[np.asarray(indices)]
    return {k: np.asarray(v[rows], self.dtypes[k]).reshape(len(rows), *self.shapes[k])
            for k, v in self.arrays.items()}

  def fingerprint(self) -> str:
    """A digest of this split's rows, read in chunks of about 64 MB (the arrays may be memory-mapped)."""
    row_bytes = sum(int(np.prod(v.shape[1:], dtype=np.int64)) * v.itemsize for v in self.arrays.values())
    step = max(1, (64 << 20) // max(row_bytes, 1))
    chunks = [self.rows[i:i + step] for i in range(0, len(self.rows), step)]

    def parts():
      for k in sorted(self.arrays):
        yield k
        yield from (self.arrays[k][c] for c in chunks)

    return digest(parts())


def read_arrays(file: pathlib.Path) -> dict[str, np.ndarray]:
  """The named arrays of a .npy (as `x`, memory-mapped) or .npz file."""
  try:
    stored = np.load(file, mmap_mode="r")  # maps a .npy; an archive's members are read into memory below
    if isinstance(stored, np.ndarray):
      names, arrays, objects = ["x"], {"x": stored}, []
    else:
      with stored as archive:
        names = list(archive.files)
        arrays, objects = {}, []
        for k in (k for k in names if k in KEYS):
          try:
            arrays[k] = archive[k]
          except ValueError as e:  # NumPy refuses object arrays (pickles) with advice that is no fix here
            if "allow_pickle" not in str(e):
              raise
            objects.append(k)
  except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:  # no array file, or objects
    # NumPy takes any other file for a pickle, and its refusal suggests allow_pickle, which is no fix here.
    reason = (f"not a NumPy {file.suffix} file" if "allow_pickle" in str(e) else
              f"damaged compressed data: {e}" if isinstance(e, zlib.error) else f"{type(e).__name__}: {e}")
    raise ValueError(f"cannot read {str(file)!r} as {file.suffix} ({reason}); save numeric arrays with "
                     f"np.save or np.savez") from None
  holds = ".npy" if isinstance(stored, np.ndarray) else ".npz"
  if holds != file.suffix:
    writer = "np.save's one array" if holds == ".npy" else "an archive of np.savez"
    raise ValueError(f"{str(file)!r} holds {writer}, a {holds} file; rename it to "
                     f"{file.with_suffix(holds).name}")
  if objects:
    raise ValueError(f"array {objects[0]!r} of {str(file)!r} holds Python objects (dtype object), which are "
                     f"not read; save numeric arrays (labels as integer class indices)")
  unused = sorted(set(names) - set(KEYS))
  if unused:
    raise ValueError(f"{str(file)!r} holds arrays {unused} that data.name='npz' does not read; name the "
                     f"arrays {', '.join(KEYS)}")
  if "x" not in arrays:
    raise ValueError(f"{str(file)!r} has no array 'x'; save the examples as x, e.g. "
                     f"np.savez(path, x=examples, label=labels)")
  return arrays


def check_examples(x: np.ndarray, name: str) -> str:
  """'image' or 'points' for an array of examples; raises saying how to convert anything else."""
  if x.dtype == bool or np.issubdtype(x.dtype, np.integer):
    if x.ndim == 3 and x.shape[-1] in (1, 3, 4):  # (N, H, W) grey images 1, 3 or 4 pixels wide: unlikely
      raise ValueError(f"integer array {name} has shape {x.shape}, which reads as {x.shape[0]} grey images "
                       f"{x.shape[1]} x {x.shape[2]} pixels; its last axis looks like colour channels: for "
                       f"one image save {name}[None], for colour images (N, H, W, C)")
    if x.ndim == 3 or (x.ndim == 4 and x.shape[-1] in (1, 3)):
      return "image"
    raise ValueError(f"integer array {name} has shape {x.shape}; images must be (N, H, W) or (N, H, W, C) "
                     f"with C = 1 or 3 (for points save float32 (N, D))")
  if np.issubdtype(x.dtype, np.floating):
    if x.ndim == 2:
      return "points"
    if x.ndim == 1:
      raise ValueError(f"float array {name} has shape {x.shape}; points must be (N, D): reshape it to "
                       f"(N, 1)")
    raise ValueError(f"float array {name} has shape {x.shape}: float images are not read; quantize them to "
                     f"integer levels (e.g. np.round(x * 255).astype(np.uint8) for x in [0, 1]) or flatten "
                     f"them to (N, D) points")
  raise ValueError(f"array {name} has dtype {x.dtype}; save integer images or float points")


def image_levels(xs: list[np.ndarray], num_levels: int) -> int:
  """The number of levels of integer images (xs: x, then x_test if given): data.num_levels, else from x's
  dtype (bool 2, uint8 256) or the largest value."""
  dtype = xs[0].dtype
  if num_levels and not 2 <= num_levels <= 256:
    raise ValueError(f"data.num_levels must be 0 (from the data) or in [2, 256], got {num_levels}")
  if dtype == bool and num_levels not in (0, 2):
    raise ValueError(f"x is bool (2 levels) but data.num_levels={num_levels}; set data.num_levels=0")
  low = min(int(x.min()) for x in xs if x.size)
  high = max(int(x.max()) for x in xs if x.size)
  if low < 0:
    raise ValueError(f"images hold negative values (down to {low}); save levels 0, 1, ... as unsigned "
                     f"integers")
  by_dtype = {np.dtype(bool): 2, np.dtype(np.uint8): 256}.get(dtype, 0)
  if by_dtype and not num_levels:
    if high >= by_dtype:  # an x_test of a wider integer dtype than x: its cast to uint8 would wrap
      raise ValueError(f"x_test holds values up to {high}, beyond the {by_dtype} levels of x ({dtype}); "
                       f"save x_test as {dtype} like x")
    if dtype == np.uint8 and high < 64:  # e.g. 0/1 masks or levels 0..16 saved as uint8
      logging.warning("x is uint8 with values only up to %d, read as 256 levels (nearly black images; "
                      "bits/dim over 256 levels); if its values are levels 0..%d, set data.num_levels=%d",
                      high, high, max(high + 1, 2))  # (2 levels at least: one value is no image data)
    return by_dtype
  if num_levels:
    if high >= num_levels:
      raise ValueError(f"images hold values up to {high} but data.num_levels={num_levels}; set "
                       f"data.num_levels to at least {high + 1} or 0 (from the data)")
    return num_levels
  if high + 1 > 256:
    raise ValueError(f"images hold values up to {high}; at most 256 levels are supported: requantize them, "
                     f"e.g. to uint8")
  if high < 1:
    raise ValueError("images hold a single value (all 0); set data.num_levels or check the data")
  return high + 1


def check_labels(labels: np.ndarray, x: np.ndarray, name: str, x_name: str) -> None:
  if labels.ndim != 1 or len(labels) != len(x):
    raise ValueError(f"{name} has shape {labels.shape} but {x_name} holds {len(x)} examples; give one "
                     f"integer label per example, shape ({len(x)},)")
  if not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"{name} has dtype {labels.dtype}; labels must be integers (class indices)")
  if len(labels) and labels.min() < 0:
    raise ValueError(f"{name} holds the negative label {labels.min()}; labels are class indices 0, 1, ...")


def check_finite(points: np.ndarray, name: str, chunk: int = 1 << 16) -> None:
  """Raises at the first row holding NaN or infinity, or a value beyond float32's range (the points are
  delivered as float32, where it would be infinite); reads a memory-mapped array a chunk at a time."""
  for start in range(0, len(points), chunk):
    rows = points[start:start + chunk]
    non_finite = ~np.isfinite(rows).all(axis=1)
    with np.errstate(over="ignore"):
      bad = non_finite | ~np.isfinite(rows.astype(np.float32)).all(axis=1)
    if bad.any():
      first = int(np.argmax(bad))
      what = "non-finite values" if non_finite[first] else "values beyond float32's range (3.4e38)"
      raise ValueError(f"{name} holds {what} (first in row {start + first}); remove, repair or rescale "
                       f"those rows")


def load(path: str, num_levels: int = 0, test_fraction: float = split_lib.DEFAULT_TEST_FRACTION,
         image_size: int = 0) -> Dataset:
  """The arrays in `path` as a Dataset of images or points (see the module docstring)."""
  if not path:
    raise ValueError("data.name='npz' needs data.path, a .npy or .npz file")
  file = pathlib.Path(path).expanduser()
  if not file.exists():
    raise FileNotFoundError(f"array file {str(file)!r} does not exist; set data.path to a .npy or .npz file")
  if file.is_dir():
    raise ValueError(f"data.path {str(file)!r} is a folder, but data.name='npz' expects a .npy or .npz file; "
                     f"for a folder of images set data.name='image_folder'")
  if file.suffix not in (".npy", ".npz"):
    raise ValueError(f"data.path {str(file)!r} is neither .npy nor .npz; save the arrays with np.save or "
                     f"np.savez")
  if image_size:
    raise ValueError("data.image_size resizes image folders only; resize the arrays before saving them")
  arrays = read_arrays(file)
  try:
    return _dataset(file, arrays, num_levels, test_fraction)
  except ValueError as e:  # a check of the arrays: named with their file, as the file's own errors are
    message = str(e)
    raise ValueError(message if repr(str(file)) in message else f"{str(file)!r}: {message}") from None


def _dataset(file: pathlib.Path, arrays: dict[str, np.ndarray], num_levels: int,
             test_fraction: float) -> Dataset:
  x = arrays["x"]
  kind = check_examples(x, "x")
  if not len(x):
    raise ValueError(f"{str(file)!r} holds no examples (x has shape {x.shape}); save a non-empty x")
  if "label_test" in arrays and "x_test" not in arrays:
    raise ValueError(f"{str(file)!r} has label_test but no x_test; add x_test or drop label_test")
  if "x_test" in arrays and ("label" in arrays) != ("label_test" in arrays):
    present, missing = ("label", "label_test") if "label" in arrays else ("label_test", "label")
    raise ValueError(f"{str(file)!r} has {present} but no {missing}; save labels for both splits or neither")
  for key in ("label", "label_test"):
    if key in arrays:
      check_labels(arrays[key], arrays[key.replace("label", "x")], key, key.replace("label", "x"))

  if "x_test" in arrays:
    split_lib.check_no_test_fraction(test_fraction, f"{str(file)!r} holds x_test")
    x_test = arrays["x_test"]
    if check_examples(x_test, "x_test") != kind or x_test.shape[1:] != x.shape[1:]:
      raise ValueError(f"x_test ({x_test.dtype} {x_test.shape[1:]} per example) does not match x ({x.dtype} "
                       f"{x.shape[1:]} per example); save both splits alike")
    train_part = {k: arrays[k] for k in ("x", "label") if k in arrays}
    test_part = {k.removesuffix("_test"): arrays[k] for k in ("x_test", "label_test") if k in arrays}
    train_rows, test_rows = np.arange(len(x)), np.arange(len(x_test))
  else:
    train_part = test_part = {k: arrays[k] for k in ("x", "label") if k in arrays}
    train_rows, test_rows = split_lib.seeded_split(
        len(x), test_fraction, f"{str(file)!r} has {len(x)} examples", "save x_test (and label_test)")

  extras = {}
  if "label" in arrays:  # conditional models check model.num_classes against it
    extras["num_classes"] = int(arrays["label"].max()) + 1
    untrained = np.setdiff1d(arrays.get("label_test", np.zeros(0, np.int64)), arrays["label"])
    if untrained.size:  # as a test class folder without a train folder is refused
      raise ValueError(f"label_test holds class {int(untrained[0])}, which no training example in label "
                       f"has: a model cannot learn it; add training examples of it to x and label, or drop "
                       f"those test rows")
  if kind == "image":
    levels = image_levels([x, arrays["x_test"]] if "x_test" in arrays else [x], num_levels)
    shape = x.shape[1:] if x.ndim == 4 else (*x.shape[1:], 1)
    spec = DataSpec(kind="image", shape=tuple(shape), num_levels=levels, extras=extras)
    x_dtype = np.dtype(np.uint8)
  else:
    if num_levels:
      raise ValueError("x holds float points, which have no levels; set data.num_levels=0")
    for key in ("x", "x_test"):
      if key in arrays:
        check_finite(arrays[key], key)
    spec = DataSpec(kind="points", shape=tuple(x.shape[1:]), extras=extras)
    x_dtype = np.dtype(np.float32)
  dtypes = {"x": x_dtype, "label": np.dtype(np.int32)}
  shapes = {"x": spec.shape, "label": ()}
  train = RowSource(train_part, train_rows, dtypes, shapes)
  test = RowSource(test_part, test_rows, dtypes, shapes)
  return Dataset(file.stem, train, test, spec)
