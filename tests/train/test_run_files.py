"""The run's files: strict JSON (non-finite floats as null)."""

from __future__ import annotations

import json
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from gm_jax.train import run_files
from tests.conftest import REPO


def _strict_loads(text: str):
  def refuse(constant):
    raise ValueError(f"not JSON: {constant}")

  return json.loads(text, parse_constant=refuse)


def test_non_finite_floats_are_written_as_null(tmp_path):
  obj = {"nll": float("nan"), "bpd": np.float32("inf"), "ok": np.float64(1.5), "n": np.int64(3),
         "rows": [1.0, -math.inf, (np.nan, 2.0)]}
  expected = {"nll": None, "bpd": None, "ok": 1.5, "n": 3, "rows": [1.0, None, [None, 2.0]]}
  run_files.write_json_atomic(tmp_path / "eval.json", obj)
  assert _strict_loads((tmp_path / "eval.json").read_text()) == expected
  assert _strict_loads(run_files.to_json(obj, indent=2)) == expected
  files = run_files.RunFiles(tmp_path, is_main=True)
  files.log(7, "test", {"nll": float("nan"), "bpd": 1.25})
  files.close()
  record = _strict_loads((tmp_path / "metrics.jsonl").read_text())
  assert record == {"step": 7, "split": "test", "nll": None, "bpd": 1.25}


def test_a_claimed_name_is_held_until_written_and_freed_if_not(tmp_path):
  target = tmp_path / "samples" / "eval_step_0000040.json"
  with run_files.claimed_unused_path(target) as first, run_files.claimed_unused_path(target) as second:
    assert (first, second) == (target, target.with_stem("eval_step_0000040_2"))
    first.write_text("{}")
  assert target.read_text() == "{}" and not second.exists()
  with pytest.raises(ValueError), run_files.claimed_unused_path(target) as third:
    raise ValueError("the run failed before writing")
  assert not third.exists()


def test_unused_path_numbers_past_every_file_of_the_same_name(tmp_path):
  target = tmp_path / "step_0000040.png"
  assert run_files.unused_path(target) == target
  (tmp_path / "step_0000040.txt").write_text("a text run's samples")  # the same name, another suffix
  (tmp_path / "recon_step_0000040.png").write_bytes(b"")  # another name
  assert run_files.unused_path(target) == tmp_path / "step_0000040_2.png"
  (tmp_path / "step_0000040_2.png").write_bytes(b"")
  assert run_files.unused_path(target) == tmp_path / "step_0000040_3.png"
  assert run_files.unused_path(tmp_path / "missing" / "eval.json") == tmp_path / "missing" / "eval.json"


@pytest.mark.parametrize("text,what", [('{"data": {', "Expecting property name"),
                                       ("null", "a JSON NoneType"), ("[1]", "a JSON list")])
def test_a_damaged_config_file_is_named_in_one_line(tmp_path, text, what):
  (tmp_path / "config.json").write_text(text)
  remedy = "the run's config cannot be checked: restore the file, or use a new --workdir"
  with pytest.raises(ValueError, match=rf"^{tmp_path / 'config.json'} is damaged \({what}.*\); {remedy}$"):
    run_files.RunFiles(tmp_path, is_main=True).read_config()


def test_truncating_the_metrics_drops_damaged_lines_and_later_records(tmp_path):
  files = run_files.RunFiles(tmp_path, is_main=True)
  for step in (1, 2, 3):
    files.log(step, "train", {"loss": float(step)})
  lines = files.metrics_path.read_text().splitlines()
  damaged = [lines[0], "null", '{"no": "step"}', lines[1], lines[2][:9]]  # the last one cut short
  files.metrics_path.write_text("\n".join(damaged) + "\n")
  files.truncate_metrics(2)
  files.close()
  assert files.metrics_path.read_text().splitlines() == lines[:2]


_LOG_WITH_TORCH_INSTALLED = """
import pathlib, sys
from gm_jax.train import run_files
workdir = pathlib.Path(sys.argv[1])
workdir.mkdir()
files = run_files.RunFiles(workdir, is_main=True)
files.log(3, "train", {"loss": 0.5})
files.close()
assert "torch" not in sys.modules, "logging imported PyTorch"
(path,) = (workdir / "tensorboard").iterdir()
(event,) = [e for e in map(run_files.event_of, run_files.read_event_records(path)) if e.step]
assert event.summary.value[0].tag == "train/loss" and event.summary.value[0].simple_value == 0.5
import torch
assert torch.STAND_IN  # PyTorch itself stays importable
"""


def test_logging_does_not_import_an_installed_pytorch(tmp_path):
  """tensorboardX imports PyTorch where it is installed (1.5 s and 180 MB in every run's process)."""
  (tmp_path / "installed").mkdir()
  (tmp_path / "installed" / "torch.py").write_text("STAND_IN = True\nTensor = object\n")
  env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'installed'}:{REPO}"}
  proc = subprocess.run([sys.executable, "-c", _LOG_WITH_TORCH_INSTALLED, str(tmp_path / "run")],
                        capture_output=True, text=True, env=env, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]


def test_a_failed_json_write_keeps_the_old_file_and_leaves_no_partial_one(tmp_path, monkeypatch):
  path = tmp_path / "summary.json"
  run_files.write_json_atomic(path, {"step": 1})
  real_write_text = pathlib.Path.write_text

  def disk_full_halfway(self, text):
    real_write_text(self, text[:len(text) // 2])
    raise OSError(28, "No space left on device", str(self))

  monkeypatch.setattr(pathlib.Path, "write_text", disk_full_halfway)
  with pytest.raises(OSError, match="No space left"):
    run_files.write_json_atomic(path, {"step": 2})
  assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
  assert json.loads(path.read_text()) == {"step": 1}
