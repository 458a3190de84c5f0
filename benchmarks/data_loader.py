r"""Training-batch loading: the project's TrainIterator against Grain, printed as JSON lines.

  python -m benchmarks.data_loader [--batch_size=128] [--batches=200]

Data: scikit-learn digits held in memory (1,497 x 8x8x1 uint8, the digits train split), and the same
kind of data as image folders written to a temporary directory: all 1,797 digits as 8x8 grey PNGs,
and 2,000 smooth 32x32 RGB PNGs. For each loader, one line with the median time per batch
(`ms_median`, the consumer's wait for `next()` with no training step in between), examples/s over
all timed batches (for a prefetching loader the median is the buffered case; the total shows its
sustained rate), `same_seed_identical` (two fresh iterators with the
same seed yield identical batches) and `resume_identical` (an iterator restored from the state saved
after some batches continues exactly as the uninterrupted one).

Loaders: `TrainIterator` over the data set's source (no threads; the image folder cache on or off);
Grain (`pip install grain`, not a project dependency) `MapDataset.source(...).shuffle(seed).repeat()
.batch(B)` over the same source read one record at a time, iterated synchronously, with its default
thread prefetch, and with `mp_prefetch` worker processes for the image folders. Without Grain only the
TrainIterator lines are printed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pathlib
import platform
import statistics
import tempfile
import time
from typing import Any, Callable, Iterator

import numpy as np
from absl import flags

from gm_jax import data as data_lib
from gm_jax.data import digits, image_folder
from gm_jax.train import command_line
from gm_jax.train.run_files import to_json

flags.DEFINE_integer("batch_size", 128, "Examples per batch.", lower_bound=1)
flags.DEFINE_integer("batches", 200, "Timed batches per measurement (after 5 untimed ones).",
                     lower_bound=1)
flags.DEFINE_integer("workers", 2, "Worker processes for Grain's mp_prefetch.")

SEED = 0


def emit(record: dict[str, Any]) -> None:
  record = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", **record}
  print(to_json(record), flush=True)


def fingerprint(batch: dict[str, np.ndarray]) -> str:
  digest = hashlib.sha1()
  for key in sorted(k for k in batch if k in ("x", "label")):
    digest.update(np.ascontiguousarray(batch[key]).tobytes())
  return digest.hexdigest()


def time_batches(it: Iterator[dict[str, np.ndarray]], count: int, batch_size: int) -> dict[str, float]:
  for _ in range(5):
    next(it)
  times = []
  for _ in range(count):
    start = time.perf_counter()
    next(it)
    times.append((time.perf_counter() - start) * 1e3)
  # examples/s from the total time: a prefetching loader's median hides its stalls once its buffer is empty
  return {"ms_median": round(statistics.median(times), 4), "ms_mean": round(statistics.fmean(times), 4),
          "examples_per_s": round(batch_size * count / (sum(times) / 1e3)), "batches": count}


def check(make: Callable[[], Any], get_state: Callable[[Any], Any], set_state: Callable[[Any, Any], None],
          count: int = 30, resume_at: int = 12) -> dict[str, bool]:
  """Same-seed determinism and exact resumption, comparing fingerprints of `count` batches."""
  first = make()
  run = [fingerprint(next(first)) for _ in range(count)]
  second = make()
  same = run == [fingerprint(next(second)) for _ in range(count)]
  it = make()
  for _ in range(resume_at):
    next(it)
  state = get_state(it)
  restored = make()
  set_state(restored, state)
  resumed = [fingerprint(next(restored)) for _ in range(count - resume_at)]
  return {"same_seed_identical": same, "resume_identical": resumed == run[resume_at:]}


def measure_train_iterator(data: str, source, batch_size: int, batches: int, **extra) -> None:
  make = lambda: data_lib.TrainIterator(source, batch_size, SEED)
  flags_ = check(make, lambda it: it.get_state(), lambda it, state: it.set_state(state))
  emit({"data": data, "loader": "TrainIterator", "batch_size": batch_size, **extra,
        **time_batches(make(), batches, batch_size), **flags_})


class Records:
  """One example per index, as Grain's random-access sources are read (arrays are indexed directly)."""

  def __init__(self, source):
    self.source = source
    self.arrays = source.arrays if isinstance(source, data_lib.ArraySource) else None

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, i: int) -> dict[str, np.ndarray]:
    if self.arrays is not None:
      return {k: v[i] for k, v in self.arrays.items()}
    return {k: v[0] for k, v in self.source[np.array([i])].items()}


def measure_grain(data: str, source, batch_size: int, batches: int, workers: int) -> None:
  import grain

  dataset = grain.MapDataset.source(Records(source)).shuffle(seed=SEED).repeat().batch(batch_size)
  variants = {"grain, synchronous": lambda: dataset.to_iter_dataset(grain.ReadOptions(num_threads=0)),
              "grain, default thread prefetch": lambda: dataset.to_iter_dataset()}
  if workers and data.startswith("image_folder"):
    variants[f"grain, mp_prefetch {workers} workers"] = lambda: dataset.to_iter_dataset(
        grain.ReadOptions(num_threads=0)).mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
  for name, build in variants.items():
    make = lambda: iter(build())
    flags_ = check(make, lambda it: it.get_state(), lambda it, state: it.set_state(state))
    emit({"data": data, "loader": name, "batch_size": batch_size, **time_batches(make(), batches, batch_size),
          **flags_})


def write_folders(root: pathlib.Path) -> dict[str, pathlib.Path]:
  """All digits as 8x8 grey PNGs in class folders, and 2,000 smooth 32x32 RGB PNGs."""
  from PIL import Image

  train, test = digits.load_arrays()
  x = np.concatenate([train["x"], test["x"]])[..., 0]
  labels = np.concatenate([train["label"], test["label"]])
  for i, (image, label) in enumerate(zip(x, labels)):
    folder = root / "digits_png" / str(label)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray((image.astype(np.uint16) * 255 // 16).astype(np.uint8)).save(folder / f"{i:04d}.png")
  rng = np.random.default_rng(0)
  (root / "rgb32_png").mkdir()
  for i in range(2000):
    coarse = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    coarse.resize((32, 32), Image.BICUBIC).save(root / "rgb32_png" / f"{i:04d}.png")
  return {"image_folder digits 8x8 L": root / "digits_png", "image_folder 2000 32x32 RGB": root / "rgb32_png"}


def main(argv):
  del argv
  batch_size, batches, workers = flags.FLAGS.batch_size, flags.FLAGS.batches, flags.FLAGS.workers
  have_grain = importlib.util.find_spec("grain") is not None
  if not have_grain:
    emit({"loader": "grain", "skipped": "grain is not installed (pip install grain)"})

  train, _ = digits.load_arrays()
  source = data_lib.ArraySource(train)
  measure_train_iterator("digits array in memory", source, batch_size, batches)
  if have_grain:
    measure_grain("digits array in memory", source, batch_size, batches, workers)

  with tempfile.TemporaryDirectory() as tmp:
    for data, folder in write_folders(pathlib.Path(tmp)).items():
      cache_bytes = image_folder.CACHE_BYTES
      image_folder.CACHE_BYTES = 0  # decode on every read: the cost of a folder too large to cache
      try:
        uncached = image_folder.load(str(folder)).train
      finally:
        image_folder.CACHE_BYTES = cache_bytes
      measure_train_iterator(data, uncached, batch_size, batches, cache=False)
      cached = image_folder.load(str(folder)).train
      cached[np.arange(len(cached))]  # fill the cache, as the first epoch does
      measure_train_iterator(data, cached, batch_size, batches, cache=True)
      if have_grain:
        measure_grain(data, uncached, batch_size, batches, workers)


if __name__ == "__main__":
  command_line.run(main)
