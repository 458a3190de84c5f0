"""Orbax checkpoints of the train state and the data position: async, keep-N, resumable."""

from __future__ import annotations

import contextlib
import os
import pathlib
import sys
import tempfile
import time
from typing import Any, Iterator

import orbax.checkpoint as ocp


UNREADABLE_DIR = "checkpoints_unreadable"


class CheckpointError(RuntimeError):
  """A checkpoint that cannot be written or restored; `reason` is the underlying error, shortened."""

  def __init__(self, message: str, step: int | None = None, reason: str = ""):
    super().__init__(message)
    self.step = step
    self.reason = reason


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

  def __init__(self, directory: pathlib.Path, keep: int, async_save: bool = True):
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=async_save,
                                           cleanup_tmp_directories=True)
    self.directory = pathlib.Path(directory).absolute()
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, data_state: dict[str, Any]) -> None:
    self._manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                     data=ocp.args.JsonSave(data_state)), force=True)

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict[str, Any]]:
    """Restores onto the shardings in `abstract_state`; an unreadable checkpoint raises one line."""
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
      message = str(error).strip()
      reason = message.splitlines()[0][:200] if message else type(error).__name__
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
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
