"""The files every run writes: config.json, metrics.jsonl, TensorBoard events, samples/, summary.json.

Only process 0 writes. On resume, metrics.jsonl is cut back to the restored step, so a resumed run's
files match an uninterrupted run's. Every JSON file (and the launcher's printed result) is strict JSON:
a non-finite float is written as null.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import math
import os
import pathlib
import struct
import sys
import time
from typing import Any

import numpy as np


def _json_default(value):
  if isinstance(value, np.integer):
    return value.item()
  raise TypeError(f"not JSON serializable: {type(value).__name__}")


def finite_or_null(obj: Any) -> Any:
  """`obj` with every non-finite float (NaN, +-inf, also NumPy's) replaced by None, tuples as lists."""
  if isinstance(obj, (float, np.floating)):
    return float(obj) if math.isfinite(obj) else None
  if isinstance(obj, dict):
    return {k: finite_or_null(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [finite_or_null(v) for v in obj]
  return obj


def to_json(obj: Any, **kwargs) -> str:
  """Strict JSON: non-finite floats are written as null (bare NaN/Infinity are not JSON)."""
  kwargs.setdefault("default", _json_default)
  return json.dumps(finite_or_null(obj), allow_nan=False, sort_keys=True, **kwargs)


def write_json_atomic(path: pathlib.Path, obj: Any) -> None:
  """Replaces `path` whole or not at all; a failed write (a full disk) leaves no partial file behind."""
  tmp = path.with_suffix(path.suffix + ".tmp")
  try:
    tmp.write_text(to_json(obj, indent=2) + "\n")
    os.replace(tmp, path)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise


def read_json_object(path: pathlib.Path, remedy: str) -> dict[str, Any]:
  """A run file's JSON object; a damaged file is one line that names it and says what to do (`remedy`)."""
  try:
    value = json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise ValueError(f"{path} is damaged ({e}); {remedy}") from None
  if not isinstance(value, dict):
    raise ValueError(f"{path} is damaged (a JSON {type(value).__name__}, not an object); {remedy}")
  return value


def unused_path(path: pathlib.Path) -> pathlib.Path:
  """`path`, or when a file of that name exists (with any suffix: a sample grid of text is a .txt), the
  first `<stem>_<n><suffix>` with n = 2, 3, ... that is free, so a later evaluation or sample run of the
  same step never replaces an earlier one's file."""
  taken = {p.stem for p in path.parent.iterdir()} if path.parent.exists() else set()
  candidate, n = path, 1
  while candidate.stem in taken:
    n += 1
    candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")
  return candidate


@contextlib.contextmanager
def claimed_unused_path(path: pathlib.Path):
  """An unused name for `path` (unused_path), held from the start by an empty file created exclusively, so
  that an evaluation or sample run beside this one takes the next name; the empty file is removed at the
  end unless the body wrote to it, so a failed run leaves nothing."""
  path.parent.mkdir(parents=True, exist_ok=True)
  while True:
    candidate = unused_path(path)
    try:
      candidate.open("x").close()
      break
    except FileExistsError:  # another run took the name between the listing and the creation
      continue
  try:
    yield candidate
  finally:
    if candidate.exists() and candidate.stat().st_size == 0:
      candidate.unlink()


def read_event_records(path: pathlib.Path) -> list[bytes]:
  """The complete TFRecord records of a TensorBoard event file, each as its raw bytes (length, length CRC,
  payload, payload CRC); a record cut short by a kill is left out."""
  data = path.read_bytes()
  records, pos = [], 0
  while pos + 12 <= len(data):
    (length,) = struct.unpack("<Q", data[pos:pos + 8])
    end = pos + 12 + length + 4
    if end > len(data):
      break
    records.append(data[pos:end])
    pos = end
  return records


@functools.cache
def _tensorboardx():
  """tensorboardX's (event_pb2, summary_pb2, EventsWriter). Its package imports PyTorch where PyTorch is
  installed, for type annotations only (1.5 s and 180 MB in every run's process): PyTorch is hidden while
  the package is first imported (its writers import PyTorch again when handed a torch tensor)."""
  hide = "tensorboardX" not in sys.modules and "torch" not in sys.modules
  if hide:
    sys.modules["torch"] = None  # `import torch` raises ImportError, which tensorboardX expects
  try:
    from tensorboardX.event_file_writer import EventsWriter
    from tensorboardX.proto import event_pb2, summary_pb2
  finally:
    if hide:
      del sys.modules["torch"]
  return event_pb2, summary_pb2, EventsWriter


def event_of(record: bytes):
  """The `Event` proto in a raw record from read_event_records."""
  event_pb2, _, _ = _tensorboardx()
  return event_pb2.Event.FromString(record[12:-4])


def _dropped(step: int, split: str, last_step: int, redo_test: bool) -> bool:
  """Whether truncate_metrics drops a record: after `last_step`, or with `redo_test` the evaluation's at
  `last_step`, which the resumed run writes again (the final one, which the trainer writes after the last
  checkpoint, or one that a SIGTERM left unfinished)."""
  return step > last_step or (redo_test and step == last_step and split == "test")


def _truncate_events(path: pathlib.Path, last_step: int, redo_test: bool) -> None:
  """Rewrites an event file without the summaries truncate_metrics drops (records kept byte for byte, CRCs
  included); removes it when no summary is left."""
  records = read_event_records(path)
  events = [event_of(r) for r in records]
  # RunFiles.log writes one summary per record, its tags "<split>/<name>".
  split_of = lambda e: e.summary.value[0].tag.split("/")[0] if e.summary.value else ""
  dropped = [e.HasField("summary") and _dropped(e.step, split_of(e), last_step, redo_test) for e in events]
  kept = [r for r, d in zip(records, dropped) if not d]
  if len(kept) == len(records) and sum(len(r) for r in records) == path.stat().st_size:
    return
  if not any(e.HasField("summary") and not d for e, d in zip(events, dropped)):
    path.unlink()
    return
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_bytes(b"".join(kept))
  os.replace(tmp, path)


class RunFiles:
  """Writer for a run's workdir (a no-op on processes other than 0)."""

  def __init__(self, workdir: pathlib.Path, is_main: bool):
    self.workdir = pathlib.Path(workdir)
    self.is_main = is_main
    self.metrics_path = self.workdir / "metrics.jsonl"
    self.samples_dir = self.workdir / "samples"
    self._tb = None

  # config ------------------------------------------------------------------------------------------
  def read_config(self) -> dict | None:
    path = self.workdir / "config.json"
    if not path.exists():
      return None
    return read_json_object(path, "the run's config cannot be checked: restore the file, or use a new "
                                  "--workdir")

  def write_config(self, config_dict: dict) -> None:
    if self.is_main:
      self.workdir.mkdir(parents=True, exist_ok=True)
      write_json_atomic(self.workdir / "config.json", config_dict)

  # metrics -----------------------------------------------------------------------------------------
  def _tensorboard(self):
    if self._tb is None:
      _, _, EventsWriter = _tensorboardx()
      directory = self.workdir / "tensorboard"
      directory.mkdir(parents=True, exist_ok=True)
      # Synchronous, without SummaryWriter's queue and thread: a logged step is in the file when log()
      # returns, so a killed run's events end where its metrics.jsonl does (and truncate alike).
      self._tb = EventsWriter(str(directory / "events"), f".{os.getpid()}")
    return self._tb

  def log(self, step: int, split: str, values: dict[str, Any]) -> None:
    if not self.is_main:
      return
    record = {"step": step, "split": split, **values}
    with self.metrics_path.open("a") as f:
      f.write(to_json(record) + "\n")
    scalars = [(f"{split}/{name}", float(value)) for name, value in values.items()
               if isinstance(value, (int, float)) and not isinstance(value, bool)]
    if scalars:
      event_pb2, summary_pb2, _ = _tensorboardx()
      summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)
                                           for tag, value in scalars])
      tb = self._tensorboard()
      tb.write_event(event_pb2.Event(summary=summary, step=step, wall_time=time.time()))
      tb.flush()

  def truncate_metrics(self, last_step: int, redo_test: bool = False) -> None:
    """Drops metric records after `last_step` (written by a run that died before its next checkpoint),
    and with `redo_test` its test record at `last_step` (see _dropped), from metrics.jsonl and from the
    TensorBoard event files, so that the resumed run's records do not appear twice."""
    if not self.is_main:
      return
    for path in sorted((self.workdir / "tensorboard").glob("events.out.tfevents.*")):
      _truncate_events(path, last_step, redo_test)
    if not self.metrics_path.exists():
      return
    kept = []
    for line in self.metrics_path.read_text().splitlines():
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        continue  # a line cut short by the kill
      if not isinstance(record, dict) or not isinstance(record.get("step"), int):
        continue  # not a record: a damaged line
      if not _dropped(record["step"], record.get("split", ""), last_step, redo_test):
        kept.append(line)
    tmp = self.metrics_path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, self.metrics_path)

  # samples and summary ---------------------------------------------------------------------------
  def sample_path(self, step: int, prefix: str = "") -> pathlib.Path:
    """samples/<prefix>step_XXXXXXX.png. The training writes the unprefixed names and quality_; the eval and
    sample modes write prefixes of their own, so that a training resumed later never replaces their files."""
    self.samples_dir.mkdir(parents=True, exist_ok=True)
    return self.samples_dir / f"{prefix}step_{step:07d}.png"

  def write_summary(self, summary: dict[str, Any]) -> None:
    if self.is_main:
      write_json_atomic(self.workdir / "summary.json", summary)

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = None


class WorkdirLock:
  """An exclusive `flock` on workdir/.lock, held while a run trains in the workdir.

  A second launch into the same workdir fails at once instead of interleaving metrics.jsonl. The kernel
  releases the lock when the holder dies (even by SIGKILL), so a killed run never blocks its rerun, which
  a pid file could. The file itself stays (removing it would race with a launch that has just opened it).
  """

  NAME = ".lock"

  def __init__(self, workdir: pathlib.Path):
    self.path = pathlib.Path(workdir) / self.NAME
    self._fd: int | None = None

  def acquire(self) -> bool:
    """Takes the lock without waiting; False when another process holds it. OSError if unwritable."""
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      os.close(fd)
      if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
        return False
      raise
    self._fd = fd
    return True

  def release(self) -> None:
    if self._fd is not None:
      os.close(self._fd)  # closing the descriptor drops the flock
      self._fd = None
