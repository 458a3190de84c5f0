"""Orbax checkpoints of the train state and the data position: async, keep-N, resumable."""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import re
import sys
import tempfile
import time
from typing import Any, Iterator

import orbax.checkpoint as ocp
from absl import logging as absl_logging

from gm_jax.train import log_filters, processes


UNREADABLE_DIR = "checkpoints_unreadable"
# The prefix of orbax's barrier names (set, so that the barrier below can be named), and the barrier that
# ends orbax's restore (Checkpointer.restore, after the reads). A process whose read fails leaves the
# restore before that barrier while the others wait in it; it joins them there, so that every process
# comes out of the attempt and can compare its outcome with the others'.
BARRIER_PREFIX = "gm_jax"
RESTORE_BARRIER = ocp.multihost.unique_barrier_key("Checkpointer:restore", prefix=BARRIER_PREFIX)


class CheckpointError(RuntimeError):
  """A checkpoint that cannot be written or restored; `reason` is the underlying error, shortened."""

  def __init__(self, message: str, step: int | None = None, reason: str = ""):
    super().__init__(message)
    self.step = step
    self.reason = reason


def short_reason(error: BaseException) -> str:
  """One short phrase for an orbax/tensorstore error (their messages embed whole JSON specs)."""
  message = str(error).strip()
  code = re.search(r"os_error_code='(\d+)'", message)
  if code:
    return os.strerror(int(code.group(1)))
  if isinstance(error, OSError) and error.strerror:
    return error.strerror
  first = message.splitlines()[0].split(" [tensorstore_spec")[0] if message else type(error).__name__
  return first[:200]


class _QuietBackgroundErrors(logging.Filter):
  """While checkpoints are written: holds back the ERROR records (each with a traceback) that orbax's
  background threads log when a write fails, and the 'Event loop is closed' errors that tensorstore's late
  callbacks raise after orbax closed its loop. A failed write reaches the caller as one CheckpointError;
  held records are logged after all when no error was raised (so nothing unexpected is hidden)."""

  def __init__(self):
    super().__init__()
    self.held: list[logging.LogRecord] = []
    self._previous_hook = None

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno >= logging.ERROR and f"{os.sep}orbax{os.sep}" in record.pathname:
      self.held.append(record)
      return False
    return True

  def _unraisable(self, unraisable) -> None:
    if isinstance(unraisable.exc_value, RuntimeError) and "Event loop is closed" in str(unraisable.exc_value):
      return
    self._previous_hook(unraisable)

  def install(self) -> None:
    absl_logging.get_absl_logger().addFilter(self)
    self._previous_hook, sys.unraisablehook = sys.unraisablehook, self._unraisable

  def uninstall(self, replay: bool) -> None:
    absl_logging.get_absl_logger().removeFilter(self)
    if sys.unraisablehook == self._unraisable:
      sys.unraisablehook = self._previous_hook
    if replay:
      for record in self.held:
        absl_logging.get_absl_logger().handle(record)
    self.held.clear()


@contextlib.contextmanager
def _stderr_captured() -> Iterator[list[bytes]]:
  """Redirects file descriptor 2 to a temporary file; yields a list that receives what was written."""
  sys.stderr.flush()
  saved = os.dup(2)
  captured: list[bytes] = []
  with tempfile.TemporaryFile() as tmp:
    os.dup2(tmp.fileno(), 2)
    try:
      yield captured
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      tmp.seek(0)
      captured.append(tmp.read())


class Checkpointer:
  """Saves `state` (a TrainState pytree) and `data` (a JSON dict, the data iterator position) per step."""

  def __init__(self, directory: pathlib.Path, keep: int, async_save: bool = True, read_only: bool = False):
    # Read-only (eval and sample modes) also leaves other processes' unfinished saves alone: a training
    # may be writing into the same directory. Its options are given as orbax sets them for a read-only
    # manager, which otherwise logs a warning for each option it changes, on every evaluation.
    options = ocp.CheckpointManagerOptions(max_to_keep=None if read_only else keep,
                                           enable_async_checkpointing=async_save,
                                           cleanup_tmp_directories=not read_only, read_only=read_only,
                                           save_interval_steps=0 if read_only else 1, create=not read_only,
                                           multiprocessing_options=ocp.options.MultiprocessingOptions(
                                               barrier_sync_key_prefix=BARRIER_PREFIX))
    self.directory = pathlib.Path(directory).absolute()
    # ... and a read-only manager warns that it is one, which eval and sample modes ask for on every run.
    with log_filters.absl_records_dropped(lambda message: message.startswith("Given directory is read only")):
      self._manager = ocp.CheckpointManager(self.directory, options=options)
    self._pending: int | None = None  # the step whose (async) save has not been confirmed yet
    self._failed = False
    self._quiet = _QuietBackgroundErrors()
    self._quiet.install()

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def keep_newest(self, keep: int) -> None:
    """Deletes all but the newest `keep` checkpoints now, so that a run resumed with fewer
    train.keep_checkpoints frees their space before it writes (orbax deletes the extra ones only after
    its next save succeeds, which a full disk prevents). Every process calls it."""
    for step in sorted(self.all_steps())[:-keep]:
      self._manager.delete(step)

  def exists(self, step: int) -> bool:
    """Whether step's directory is still on disk (a training's rotation may remove it during a read)."""
    return (self.directory / str(step)).exists()

  def _write_error(self, error: BaseException, step: int | None) -> CheckpointError:
    self._failed = True
    bound = step if step is not None else float("inf")
    intact = [int(p.name) for p in self.directory.iterdir() if p.name.isdigit() and int(p.name) < bound]
    kept = f"checkpoints up to step {max(intact)} are intact" if intact else "no earlier checkpoint"
    reason = short_reason(error)
    what = f"checkpoint {self.directory / str(step)}" if step is not None else "a checkpoint"
    return CheckpointError(f"{what} could not be written ({reason}); the run stopped and {kept}: fix that "
                           f"and rerun the same command to resume", step=step, reason=reason)

  def save(self, step: int, state: Any, data_state: dict[str, Any]) -> None:
    """Starts saving `step`; raises CheckpointError if this or the previous (async) save failed, naming
    the one that did (orbax would wait for the previous save inside this one's call)."""
    if self._pending is not None:
      self.wait()
    try:
      self._manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                       data=ocp.args.JsonSave(data_state)), force=True)
    except Exception as e:  # orbax/tensorstore raise ValueError, OSError, ... for a failed write
      raise self._write_error(e, step) from None
    self._pending = step

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict[str, Any]]:
    """Restores onto the shardings in `abstract_state`; an unreadable checkpoint raises one line. Every
    process calls it, and every process leaves it, whether its own read failed or not (RESTORE_BARRIER)."""
    args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore())
    error = None
    # When one read fails, tensorstore finishes the others on its own threads after orbax's event loop
    # has closed, and they print tracebacks about that loop; keep them out of the one-line error.
    with _stderr_captured() as captured:
      try:
        restored = self._manager.restore(step, args=args)
      except Exception as e:  # orbax/tensorstore raise many types for damaged or mismatched files
        error = e
        time.sleep(0.5)  # let the stray reads finish while stderr is still captured
    if error is not None:
      processes.sync_processes(RESTORE_BARRIER)
      message = str(error).strip()
      # tensorstore appends its whole spec to a failed read ("... See full TensorStore details: ...").
      first = message.splitlines()[0].split(" See full TensorStore details")[0] if message else ""
      reason = first.rstrip(" .")[:200] or type(error).__name__
      raise CheckpointError(
          f"checkpoint {self.directory / str(step)} cannot be restored ({reason}); it is damaged or "
          f"from a different model: use a new --workdir", step=step, reason=reason)
    sys.stderr.write(captured[0].decode(errors="replace"))  # a successful restore's warnings, if any
    return restored["state"], dict(restored["data"])

  def set_aside(self, step: int) -> pathlib.Path:
    """Moves checkpoint `step` to UNREADABLE_DIR beside the checkpoints (kept for inspection, not deleted),
    so that the resumed run can save that step again; returns where it went."""
    target_dir = self.directory.parent / UNREADABLE_DIR
    target_dir.mkdir(exist_ok=True)
    target, n = target_dir / str(step), 1
    while target.exists():
      target, n = target_dir / f"{step}.{n}", n + 1
    os.replace(self.directory / str(step), target)
    return target

  def reload(self) -> None:
    """Rereads the list of steps from disk (after another process moved one)."""
    self._manager.reload()

  def wait(self) -> None:
    """Waits for the pending save; raises CheckpointError if it failed."""
    try:
      self._manager.wait_until_finished()
    except Exception as e:
      raise self._write_error(e, self._pending) from None
    self._pending = None

  def close(self) -> None:
    """Finishes the pending save and closes; quiet, since a failed save was already raised by save/wait
    or another error is on its way out."""
    try:
      self._manager.wait_until_finished()
      self._manager.close()
    except Exception:  # reported by save()/wait(), or superseded by the error that ends the run
      self._failed = True
    finally:
      self._quiet.uninstall(replay=not self._failed)
