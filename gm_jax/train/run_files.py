"""The files every run writes: config.json, metrics.jsonl, TensorBoard events, samples/, summary.json.

Only process 0 writes. On resume, metrics.jsonl is cut back to the restored step, so a resumed run's
files match an uninterrupted run's.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from typing import Any

import numpy as np


def _json_default(value):
  if isinstance(value, (np.floating, np.integer)):
    return value.item()
  if isinstance(value, tuple):
    return list(value)
  raise TypeError(f"not JSON serializable: {type(value).__name__}")


def write_json_atomic(path: pathlib.Path, obj: Any) -> None:
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")
  os.replace(tmp, path)


def _finite_or_none(value):
  return value if not isinstance(value, float) or math.isfinite(value) else None


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
    return json.loads(path.read_text()) if path.exists() else None

  def write_config(self, config_dict: dict) -> None:
    if self.is_main:
      self.workdir.mkdir(parents=True, exist_ok=True)
      write_json_atomic(self.workdir / "config.json", config_dict)

  # metrics -----------------------------------------------------------------------------------------
  def _tensorboard(self):
    if self._tb is None:
      from tensorboardX import SummaryWriter

      self._tb = SummaryWriter(logdir=str(self.workdir / "tensorboard"))
    return self._tb

  def log(self, step: int, split: str, values: dict[str, Any]) -> None:
    if not self.is_main:
      return
    record = {"step": step, "split": split, **{k: _finite_or_none(v) for k, v in values.items()}}
    with self.metrics_path.open("a") as f:
      f.write(json.dumps(record, sort_keys=True, default=_json_default) + "\n")
    tb = self._tensorboard()
    for name, value in values.items():
      if isinstance(value, (int, float)) and not isinstance(value, bool):
        tb.add_scalar(f"{split}/{name}", value, step)
    tb.flush()

  def truncate_metrics(self, last_step: int) -> None:
    """Drops metric records after `last_step` (written by a run that died before its next checkpoint)."""
    if not self.is_main or not self.metrics_path.exists():
      return
    kept = []
    for line in self.metrics_path.read_text().splitlines():
      try:
        if json.loads(line)["step"] <= last_step:
          kept.append(line)
      except (json.JSONDecodeError, KeyError):
        continue  # a line cut short by the kill
    tmp = self.metrics_path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, self.metrics_path)

  # samples and summary ---------------------------------------------------------------------------
  def sample_path(self, step: int) -> pathlib.Path:
    self.samples_dir.mkdir(parents=True, exist_ok=True)
    return self.samples_dir / f"step_{step:07d}.png"

  def write_summary(self, summary: dict[str, Any]) -> None:
    if self.is_main:
      write_json_atomic(self.workdir / "summary.json", summary)

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = None
