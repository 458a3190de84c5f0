"""Orbax checkpoints of the train state and the data position: async, keep-N, resumable."""

from __future__ import annotations

import pathlib
from typing import Any

import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  pass


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
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
    except Exception as e:  # orbax/tensorstore raise many types for damaged or mismatched files
      first_line = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
      raise CheckpointError(
          f"checkpoint {self.directory / str(step)} cannot be restored ({first_line}); it is damaged or "
          f"from a different model: move it away to resume from an earlier one, or use a new --workdir"
      ) from None
    return restored["state"], dict(restored["data"])

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
