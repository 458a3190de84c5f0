"""The benchmarks' start-up checks: a missing PyTorch and an impossible thread count are one-line errors
before anything compiles; their records are strict JSON."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from benchmarks import timing
from tests.conftest import REPO


def test_a_missing_pytorch_names_the_bench_extra(monkeypatch):
  real = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: None if name == "torch" else real(name, *a))
  with pytest.raises(ValueError, match=r'PyTorch is not installed: pip install -e "\.\[bench\]", or pass '
                                           r"--reference=none"):
    timing.require_reference("torch")
  timing.require_reference("none")


@pytest.mark.parametrize("extra", [-1, 1])
def test_threads_beyond_the_usable_cores_are_refused(extra):
  usable = len(os.sched_getaffinity(0))
  n = -1 if extra < 0 else usable + extra
  with pytest.raises(ValueError, match=rf"--threads={n}: this process may use {usable} cores"):
    timing.use_threads(n)


def test_a_record_is_strict_json_and_a_bad_flag_one_line(capsys):
  timing.emit({"ratio": float("nan"), "reverse_kl": float("inf")})  # bare NaN / Infinity are not JSON
  record = json.loads(capsys.readouterr().out)
  assert record["ratio"] is None and record["reverse_kl"] is None
  usable = len(os.sched_getaffinity(0))
  proc = subprocess.run([sys.executable, "-m", "benchmarks.lm_step", f"--threads={usable + 1}",
                         "--reference=none"], capture_output=True, text=True, cwd=REPO, timeout=120,
                        env={**os.environ, "JAX_PLATFORMS": "cpu"})  # it printed the whole usage text too
  assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
      f"error: --threads={usable + 1}: this process may use {usable} cores; pass 0 (all) to {usable}"]
  # A misspelt override of the default config's field (applied as the flag is defined, at import).
  proc = subprocess.run([sys.executable, "-m", "benchmarks.lm_step", "--config.model.num_layer=3",
                         "--reference=none"], capture_output=True, text=True, cwd=REPO, timeout=120,
                        env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
      "error: --config.model.num_layer: the config has no field 'num_layer' (did you mean 'num_layers'?); "
      "see the config file for its fields"]
