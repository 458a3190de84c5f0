"""Deterministic, resumable, process-sharded batching over random-access sources.

A source is anything with `len()` and `source[indices] -> dict of arrays with leading axis len(indices)`.
The training stream is a pure function of (seed, position): epoch e visits the examples in the order
`permutation(seed, e)`, epochs are concatenated, and the global batch for step s is the stream's examples
[s * B, (s + 1) * B). Each process reads only its contiguous slice of that global batch. So the data
position saved in a checkpoint is one integer, and a resumed run sees exactly the batches the
uninterrupted run would have seen, for any number of processes.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from typing import Any, Iterable, Iterator, Protocol

import numpy as np


class Source(Protocol):

  def __len__(self) -> int:
    ...

  def __getitem__(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    ...


_RANGE_BLOCK = 1 << 20  # a range's values are hashed this many at a time


def digest(parts: Iterable[np.ndarray | range | str]) -> str:
  """A short sha256 of arrays (dtype, shape and values) and strings, in order: a source's fingerprint. A
  `range` is hashed as the int64 array of its values, without building that array."""
  h = hashlib.sha256()
  for part in parts:
    if isinstance(part, str):
      # surrogateescape: a file name in another encoding than UTF-8 keeps its bytes (strict encoding raised)
      h.update(part.encode("utf-8", "surrogateescape") + b"\0")
    elif isinstance(part, range):
      h.update(f"{np.dtype(np.int64).str}{(len(part),)}".encode("ascii"))
      for first in range(0, len(part), _RANGE_BLOCK):
        block = part[first:first + _RANGE_BLOCK]
        h.update(np.arange(block.start, block.stop, block.step, dtype=np.int64).view(np.uint8))
    else:
      a = np.ascontiguousarray(part)
      h.update(f"{a.dtype.str}{a.shape}".encode("ascii"))
      h.update(a.reshape(-1).view(np.uint8))
  return h.hexdigest()[:16]


def fingerprint(source: Source) -> str | None:
  """The source's `fingerprint()`, a digest of its examples, if it gives one: sources of users' files
  (and text corpora, from files or TFDS) do. Data that their config determines (generated points,
  scikit-learn's digits, synthetic sequences) and TFDS image splits (their name and version) give none,
  so that a generated array's last-bit differences between machines cannot refuse a resume."""
  method = getattr(source, "fingerprint", None)
  if method is None:
    return None
  # Once per source: hashing a large split takes seconds, and a run's iterators and its multi-process data
  # check share the source (kept in the instance's __dict__, which frozen dataclasses allow).
  cache = getattr(source, "__dict__", None)
  if cache is None:
    return method()
  if "_fingerprint" not in cache:
    cache["_fingerprint"] = method()
  return cache["_fingerprint"]


@dataclasses.dataclass(frozen=True)
class ArraySource:
  """An in-memory source: a dict of arrays sharing their leading axis; `fingerprinted` for arrays read
  from a user's file (see `fingerprint`)."""

  arrays: dict[str, np.ndarray]
  fingerprinted: bool = False

  def __post_init__(self):
    lengths = {k: len(v) for k, v in self.arrays.items()}
    if len(set(lengths.values())) != 1:
      raise ValueError(f"arrays of an ArraySource must have equal length, got {lengths}")

  def __len__(self) -> int:
    return len(next(iter(self.arrays.values())))

  def __getitem__(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[indices] for k, v in self.arrays.items()}

  def fingerprint(self) -> str | None:
    if not self.fingerprinted:
      return None
    return digest(part for k in sorted(self.arrays) for part in (k, self.arrays[k]))


@functools.lru_cache(maxsize=2)
def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  """The order of epoch `epoch` (read-only). Cached: drawing it costs O(n), and every batch of the epoch
  reads it; a batch spans at most two epochs, and each cached order holds n indices (a large text
  corpus has one per token), so no more are kept. In int32 where n allows: the same order as int64's."""
  indices = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
  order = np.random.default_rng([seed, epoch]).permutation(indices)
  order.flags.writeable = False
  return order


def stream_indices(seed: int, start: int, count: int, n: int) -> np.ndarray:
  """Source indices of stream positions [start, start + count) (shuffled, epochs concatenated)."""
  out = np.empty(count, np.int64)
  filled = 0
  while filled < count:
    position = start + filled
    epoch, offset = divmod(position, n)
    take = min(n - offset, count - filled)
    out[filled:filled + take] = epoch_permutation(seed, epoch, n)[offset:offset + take]
    filled += take
  return out


def process_slice(global_batch_size: int, process_index: int, process_count: int) -> slice:
  if global_batch_size % process_count:
    raise ValueError(f"batch size {global_batch_size} must be divisible by the number of processes "
                     f"({process_count}); change data.batch_size")
  per_process = global_batch_size // process_count
  return slice(process_index * per_process, (process_index + 1) * per_process)


@dataclasses.dataclass
class TrainIterator:
  """Yields this process's part of each global training batch; `position` is the step to read next.

  Every batch carries `index` (the example's global position in the stream, for per-example PRNG keys)
  and `mask` (all ones in training).
  """

  source: Source
  global_batch_size: int
  seed: int
  position: int = 0
  process_index: int = 0
  process_count: int = 1

  def __post_init__(self):
    if len(self.source) == 0:
      raise ValueError("the training split is empty")
    # At the start, of the data as the run found it (a checkpoint records it, a resumed run compares it).
    self.fingerprint = fingerprint(self.source)

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    # The processes' split of the batch is checked when one is drawn: eval and sample modes restore a
    # run's data state on any number of processes (to notice changed data) and draw no batch.
    part = process_slice(self.global_batch_size, self.process_index, self.process_count)
    start = self.position * self.global_batch_size
    stream_pos = np.arange(start, start + self.global_batch_size, dtype=np.int64)[part]
    indices = stream_indices(self.seed, int(stream_pos[0]), len(stream_pos), len(self.source))
    batch = dict(self.source[indices])
    batch["index"] = stream_pos
    batch["mask"] = np.ones(len(stream_pos), np.float32)
    self.position += 1
    return batch

  def get_state(self) -> dict[str, Any]:
    state = {"position": self.position, "seed": self.seed, "global_batch_size": self.global_batch_size,
             "num_examples": len(self.source)}
    return state | ({"fingerprint": self.fingerprint} if self.fingerprint else {})

  def set_state(self, state: dict[str, Any]) -> None:
    if state["seed"] != self.seed or state["global_batch_size"] != self.global_batch_size:
      raise ValueError(f"data state {state} does not match this run's data seed {self.seed} and batch "
                       f"size {self.global_batch_size}; resume with the original config")
    # Files added or removed since: the split and the order of every later batch would differ.
    stored = state.get("num_examples", len(self.source))  # checkpoints from before it was recorded
    if stored != len(self.source):
      raise ValueError(f"the training split holds {len(self.source)} examples, but this run was trained on "
                       f"{stored}: the data changed since; use the original data, or train in a new "
                       f"--workdir")
    # The same number of examples but other ones (files replaced or edited); checkpoints from before
    # fingerprints were recorded, and sources without one, are not compared.
    if state.get("fingerprint") and self.fingerprint and state["fingerprint"] != self.fingerprint:
      raise ValueError(f"the training split's examples differ from those this run was trained on (data "
                       f"fingerprint {self.fingerprint}, stored {state['fingerprint']}): the data changed "
                       f"since; use the original data, or train in a new --workdir")
    self.position = int(state["position"])


def eval_batches(source: Source, global_batch_size: int, process_index: int = 0,
                 process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
  """The whole split once, in order; the last batch is padded and `mask` marks the real examples."""
  part = process_slice(global_batch_size, process_index, process_count)
  n = len(source)
  for start in range(0, n, global_batch_size):
    pos = np.arange(start, start + global_batch_size, dtype=np.int64)[part]
    mask = (pos < n).astype(np.float32)
    batch = dict(source[np.minimum(pos, n - 1)])
    batch["index"] = pos
    batch["mask"] = mask
    yield batch
