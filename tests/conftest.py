"""Shared test set-up: quiet logs, and a helper to run the launcher in a subprocess."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

# Trained feature networks (the digits classifier) are cached once per machine for the whole suite.
os.environ.setdefault("GM_JAX_CACHE", str(pathlib.Path(tempfile.gettempdir()) / "gm_jax_test_cache"))

REPO = pathlib.Path(__file__).resolve().parents[1]
MAIN = REPO / "experiments" / "main.py"
KILL_AT_STEP = REPO / "tests" / "kill_at_step.py"  # main.py that SIGKILLs itself after a given step
CONFIGS = REPO / "experiments" / "configs"


WALL_CLOCK_KEYS = ("examples_per_sec", "sample_ms_per_1000")


def without_wall_clock(record: dict) -> dict:
  """A metrics or summary record without its wall-clock fields (they differ between identical runs)."""
  return {k: v for k, v in record.items() if k not in WALL_CLOCK_KEYS}


def run_main(*args: str, env: dict | None = None, check: bool = True, timeout: float = 300,
             script: pathlib.Path = MAIN):
  """Runs experiments/main.py (or another launcher `script`) with the given flags; returns the process."""
  full_env = {**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})}
  full_env.pop("XLA_FLAGS", None) if "XLA_FLAGS" not in (env or {}) else None
  proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=full_env,
                        timeout=timeout, cwd=REPO)
  if check and proc.returncode != 0:
    raise AssertionError(f"{script.name} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
  return proc


@pytest.fixture
def run_launcher():
  return run_main


def load_config(name: str, arg: str | None = None):
  """get_config(arg) of experiments/configs/<name>.py, unlocked so tests may adjust fields."""
  from gm_jax.train.defaults import load_config_file

  return load_config_file(CONFIGS / f"{name}.py", arg)
