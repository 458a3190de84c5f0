"""Reflow's training data (Liu et al. 2023, "Flow Straight and Fast"): pairs (noise, x) in which x is
where a trained flow's ODE carries the noise, read from a .npz file (experiments/reflow_pairs.py writes
one) in place of a data set's training split.

The file holds `x` (N, *shape), in the data's own representation (integer levels for images, float
points), and `noise` (N, *shape) float, the starting point of each x's ODE path in model space; and
`label` (N,) if the flow was class-conditional. The data set keeps its test split, description and (as
`real_train`) its real training examples, so a reflowed model is evaluated on the real data, and its
samples judged against the same data floor, as its first flow was.
"""

from __future__ import annotations

import os
import pathlib
import zipfile
import zlib

import numpy as np

from gm_jax.data.dataset import Dataset
from gm_jax.data.pipeline import ArraySource


def with_reflow_pairs(dataset: Dataset, path: str) -> Dataset:
  """`dataset` with its training split replaced by the pairs in `path`."""
  file = pathlib.Path(path).expanduser()
  if not file.is_file() or file.suffix != ".npz":
    raise FileNotFoundError(f"data.reflow_pairs {str(file)!r} is not a .npz file; write one with "
                            f"experiments/reflow_pairs.py")
  try:
    with np.load(file) as stored:
      arrays = {k: stored[k] for k in stored.files}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:  # cut short or damaged
    raise ValueError(f"cannot read the reflow pairs {str(file)!r} ({type(e).__name__}); write them again "
                     f"with experiments/reflow_pairs.py") from None
  spec = dataset.spec
  missing, unknown = {"x", "noise"} - set(arrays), set(arrays) - {"x", "noise", "label"}
  if missing or unknown:
    raise ValueError(f"{str(file)!r} holds {sorted(arrays)}; reflow pairs hold x and noise (and label)")
  x, noise = arrays["x"], arrays["noise"]
  for name, array in (("x", x), ("noise", noise)):
    if array.shape[1:] != tuple(spec.shape) or len(array) != len(x):
      raise ValueError(f"{name} in {str(file)!r} has shape {array.shape}, but data {dataset.name!r} has "
                       f"examples of shape {tuple(spec.shape)}; draw the pairs from a run on this data")
  if (spec.kind == "image") != np.issubdtype(x.dtype, np.integer):
    raise ValueError(f"x in {str(file)!r} is {x.dtype}, but data {dataset.name!r} holds "
                     f"{'integer levels' if spec.kind == 'image' else 'float points'}")
  if spec.kind == "image" and len(x) and not 0 <= x.min() <= x.max() < spec.num_levels:
    raise ValueError(f"x in {str(file)!r} holds levels {x.min()} to {x.max()}, but data {dataset.name!r} "
                     f"has {spec.num_levels} (0 to {spec.num_levels - 1}); draw the pairs from a run on this "
                     f"data")
  pairs = {"x": x, "noise": noise.astype(np.float32)}
  if "label" in arrays:
    labels, classes = arrays["label"], spec.extras.get("num_classes", 0)
    if labels.shape != (len(x),):
      raise ValueError(f"label in {str(file)!r} has shape {labels.shape}; give one label per pair "
                       f"({len(x)})")
    if classes and len(labels) and not 0 <= labels.min() <= labels.max() < classes:
      raise ValueError(f"label in {str(file)!r} holds classes {labels.min()} to {labels.max()}, but data "
                       f"{dataset.name!r} has {classes} (0 to {classes - 1}); draw the pairs from a run on "
                       f"this data")
    pairs["label"] = labels.astype(np.int32)
  return Dataset(dataset.name, ArraySource(pairs, fingerprinted=True), dataset.test, spec,
                 real_train=dataset.train_examples)


def write_pairs(pairs: dict[str, np.ndarray], path: str) -> pathlib.Path:
  """Saves pairs to a new .npz file: an existing file is never overwritten, and a write that fails midway
  leaves no file under the final name."""
  out = pathlib.Path(path).expanduser()
  if out.suffix != ".npz":
    raise ValueError(f"reflow pairs go to a .npz file, not {str(out)!r}")
  if out.exists():
    raise FileExistsError(f"{str(out)!r} exists; choose another file (pairs are never overwritten)")
  out.parent.mkdir(parents=True, exist_ok=True)
  partial = out.with_name(out.name + ".partial.npz")
  np.savez(partial, **pairs)
  os.replace(partial, out)
  return out
