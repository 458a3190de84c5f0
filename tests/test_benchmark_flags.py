"""The benchmarks' start-up checks: a missing PyTorch and an impossible thread count are one-line usage
errors before anything compiles."""

import importlib.util
import os

import pytest
from absl import app

from benchmarks import timing


def test_a_missing_pytorch_names_the_bench_extra(monkeypatch):
  real = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
  with pytest.raises(app.UsageError, match=r'PyTorch is not installed: pip install -e "\.\[bench\]", or pass '
                                           r"--reference=none"):
    timing.require_reference("torch")
  timing.require_reference("none")


@pytest.mark.parametrize("extra", [-1, 1])
def test_threads_beyond_the_usable_cores_are_refused(extra):
  usable = len(os.sched_getaffinity(0))
  n = -1 if extra < 0 else usable + extra
  with pytest.raises(app.UsageError, match=rf"--threads={n}: this process may use {usable} cores"):
    timing.use_threads(n)
