"""The checkpointer's own promises: a failed write names the step that failed and the steps still intact."""

import errno

import jax.numpy as jnp
import pytest

from gm_jax.train import checkpoint


def test_a_failed_synchronous_save_names_its_own_step_and_the_intact_ones_before_it(tmp_path, monkeypatch):
  ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints", keep=5, async_save=False)
  state = {"w": jnp.arange(3.0)}
  try:
    ckpt.save(10, state, {"position": 1})
    ckpt.save(20, state, {"position": 2})

    def disk_full(*args, **kwargs):
      raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt._manager, "save", disk_full)
    with pytest.raises(checkpoint.CheckpointError) as raised:
      ckpt.save(30, state, {"position": 3})
    # Step 20 was written whole; the message used to blame it and call only step 10 intact.
    assert raised.value.step == 30
    assert str(raised.value) == (
        f"checkpoint {tmp_path / 'checkpoints' / '30'} could not be written (No space left on device); the "
        f"run stopped and checkpoints up to step 20 are intact: fix that and rerun the same command to "
        "resume")
    monkeypatch.undo()
    assert ckpt.all_steps() == [10, 20]
    assert ckpt.restore(20, state)[1] == {"position": 2}
  finally:
    ckpt.close()


def test_a_read_only_checkpointer_restores_without_orbax_warnings(tmp_path, caplog):
  """Eval and sample modes open the checkpoints read-only: no warning per option orbax adjusts (four
  lines on every evaluation) nor that the directory is read-only, and the steps written by a training are
  read."""
  state = {"w": jnp.arange(3.0)}
  writer = checkpoint.Checkpointer(tmp_path / "checkpoints", keep=5, async_save=False)
  try:
    writer.save(10, state, {"position": 1})
  finally:
    writer.close()
  with caplog.at_level("WARNING"):
    reader = checkpoint.Checkpointer(tmp_path / "checkpoints", keep=5, async_save=False, read_only=True)
  try:
    assert reader.all_steps() == [10] and reader.restore(10, state)[1] == {"position": 1}
  finally:
    reader.close()
  assert [record.getMessage() for record in caplog.records if "orbax" in record.pathname] == []
