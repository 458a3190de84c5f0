"""Shared test set-up: quiet logs, and a helper to run the launcher in a subprocess."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest
import threadpoolctl


def xla_flags(devices: int | None = None) -> str:
  """XLA_FLAGS for the tests' processes (this one, launcher subprocesses, notebook kernels). The suite is
  compile-bound (tiny programs run a few steps): LLVM's optimization level 0 compiles the U-Net `:tiny`
  runs' programs about a third faster than level 1 (the whole suite's test time 38 -> 30 min), and
  XLA:CPU's older loop emitters instead of its MLIR fusion emitters compile the tiny configs' programs
  10-35 % faster. Neither uses fast-math: results differ from level 1's in float32 rounding only.
  The few tests that train for hundreds of steps compile their own programs at level 1 (RUNTIME_BOUND).
  One compute thread per process: the suite runs a process per core. `devices` fakes that many CPU
  devices."""
  flags = ["--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false",
           "--xla_cpu_multi_thread_eigen=false"]
  if devices is not None:
    flags.append(f"--xla_force_host_platform_device_count={devices}")
  return " ".join(flags)


# Compiler options for a test's own programs that run for hundreds of steps: at level 0 they run 2-3x
# slower, which costs more than the faster compilation saves (the Markov LM's 500 steps 31 -> 63 s).
RUNTIME_BOUND = {"xla_backend_optimization_level": 1}


@pytest.fixture
def runtime_bound_train_step(monkeypatch):
  """The trainer compiles its programs (step, evaluation, samplers) with RUNTIME_BOUND added in this test."""
  from gm_jax.train import cpu_compile

  default = cpu_compile.compiler_options
  monkeypatch.setattr(cpu_compile, "compiler_options", lambda: {**(default() or {}), **RUNTIME_BOUND})


# Before JAX starts its backend; notebook kernels inherit it. Not over a value already set: a test's own
# subprocess (e.g. a multi-device worker importing this module) keeps the flags it was started with.
os.environ.setdefault("XLA_FLAGS", xla_flags())
# One BLAS thread per process too. OpenBLAS's threads spin while they wait, so with a thread per core in
# each of the suite's processes, NumPy's and SciPy's products (sample quality's distances, FD's covariances)
# ran 1.6-3.5x slower beside a busy core (the toy2d_gmm baseline test 26-84 s against 16-24 s). The
# variables reach BLAS libraries loaded later and subprocesses; NumPy's, loaded before this module by
# pytest's plugins, is limited in place.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
  os.environ.setdefault(_variable, "1")
threadpoolctl.threadpool_limits(int(os.environ["OPENBLAS_NUM_THREADS"]))


# XLA's persistent compilation cache, one per test process and session: the many tests that train the
# same tiny configs then compile each program once (a hit returns the same executable, so results do not
# change). The subprocesses a test starts and waits for (launcher runs, notebook kernels, workers) inherit
# it through the environment; processes that run at the same time (tests/train/test_multihost.py) or are
# killed mid-run (KILL_AT_STEP) are started without it, since JAX writes an entry in place. One cache for
# both xdist workers would not pay for the unlocked concurrent writes: of a whole run's 10,500 compiled
# programs, 870 were compiled by both workers, nearly all of them single operations.
_CACHE_DIRECTORY = pytest.StashKey[str]()
CACHE_ENV = ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
             "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES")


def pytest_configure(config):
  """A new cache for each test process (each xdist worker, not the one its parent made)."""
  directory = tempfile.mkdtemp(prefix="gm_jax_test_xla_cache_")
  config.stash[_CACHE_DIRECTORY] = directory
  os.environ.update(zip(CACHE_ENV, (directory, "0", "0")))  # read by JAX when it is imported
  if "jax" in sys.modules:
    import jax

    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_unconfigure(config):
  """Removes the process's cache (about 100 MB after a whole run). Not at interpreter exit: whole runs
  left a worker's cache behind when that was the only clean-up."""
  import shutil

  shutil.rmtree(config.stash[_CACHE_DIRECTORY], ignore_errors=True)


def without_compilation_cache(env: dict) -> dict:
  """`env` without the persistent compilation cache, for processes that may write it concurrently."""
  return {k: v for k, v in env.items() if k not in CACHE_ENV}


REPO = pathlib.Path(__file__).resolve().parents[1]
MAIN = REPO / "experiments" / "main.py"
KILL_AT_STEP = REPO / "tests" / "kill_at_step.py"  # main.py that SIGKILLs itself after a given step
CONFIGS = REPO / "experiments" / "configs"


WALL_CLOCK_KEYS = ("examples_per_sec", "sample_ms_per_1000")


def without_wall_clock(record: dict) -> dict:
  """A metrics or summary record without its wall-clock fields (they differ between identical runs)."""
  return {k: v for k, v in record.items() if k not in WALL_CLOCK_KEYS}


def run_main(*args: str, env: dict | None = None, check: bool = True, timeout: float = 300,
             script: pathlib.Path = MAIN, cwd: pathlib.Path = REPO):
  """Runs experiments/main.py (or another launcher `script`) with the given flags from `cwd`; returns the
  process."""
  full_env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": xla_flags(), **(env or {})}
  if script == KILL_AT_STEP:
    full_env = without_compilation_cache(full_env)
  proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=full_env,
                        timeout=timeout, cwd=cwd)
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


# The tolerance within which runs on different device or process counts agree (README, "On several
# devices"): cross-device sums add in another order, so results agree to float32 rounding, not bit for bit.
DEVICE_COUNT_RTOL, DEVICE_COUNT_ATOL = 1e-5, 1e-6


def run_metrics(workdir: pathlib.Path) -> list[dict]:
  """metrics.jsonl's records without wall-clock fields."""
  import json

  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [without_wall_clock(json.loads(line)) for line in lines]


def final_params(workdir: pathlib.Path):
  """The networks of the latest checkpoint of a run (its config.json's), on the host."""
  import json

  import jax
  import ml_collections

  from gm_jax import tasks

  config = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))
  config.mesh.fsdp = 1  # restored here, on this process's devices
  exp = tasks.experiment(config, workdir, read_only=True)
  try:
    state, _ = exp.restore_latest()
  finally:
    exp.checkpointer.close()
  return jax.device_get(state.networks)


def assert_runs_close(workdir_a: pathlib.Path, workdir_b: pathlib.Path, rtol: float = DEVICE_COUNT_RTOL,
                      atol: float = DEVICE_COUNT_ATOL) -> None:
  """Two runs of one config agree: metrics, summary.json and final parameters within rtol/atol."""
  import json

  import jax
  import numpy as np

  def close(a, b):
    if isinstance(a, float) or isinstance(b, float):
      assert a == pytest.approx(b, rel=rtol, abs=atol)
    else:
      assert a == b

  metrics_a, metrics_b = run_metrics(workdir_a), run_metrics(workdir_b)
  assert [(r["step"], r["split"], sorted(r)) for r in metrics_a] == [
      (r["step"], r["split"], sorted(r)) for r in metrics_b]
  for a, b in zip(metrics_a, metrics_b):
    for k in a:
      close(a[k], b[k])
  summary_a = without_wall_clock(json.loads((workdir_a / "summary.json").read_text()))
  summary_b = without_wall_clock(json.loads((workdir_b / "summary.json").read_text()))
  assert summary_a.keys() == summary_b.keys()
  for k in summary_a:
    close(summary_a[k], summary_b[k])
  leaves_a, leaves_b = jax.tree.leaves(final_params(workdir_a)), jax.tree.leaves(final_params(workdir_b))
  assert len(leaves_a) == len(leaves_b)
  for a, b in zip(leaves_a, leaves_b):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


# Files of long tests (notebook kernels, every config's run, launcher subprocesses), collected first so
# that pytest-xdist starts them early and ends the session on short tests, with both workers busy.
LONG_TESTS_FIRST = ("test_notebooks.py", "test_configs.py", "test_end_to_end.py")


def pytest_collection_modifyitems(config, items):
  rank = lambda item: (LONG_TESTS_FIRST.index(item.path.name) if item.path.name in LONG_TESTS_FIRST
                       else len(LONG_TESTS_FIRST))
  items.sort(key=rank)


def cut_back_to(source: pathlib.Path, target: pathlib.Path, step: int, config) -> None:
  """`source`'s workdir as a run killed after its checkpoint at `step` leaves it, in `target`, with
  `config`'s config.json: later checkpoints, samples and summary.json removed, metric rows kept."""
  from gm_jax.train.config_checks import config_to_dict

  shutil.copytree(source, target, ignore=shutil.ignore_patterns("samples", "summary.json", "*.lock"))
  later = [p for p in (target / "checkpoints").iterdir() if p.name.isdigit() and int(p.name) > step]
  assert later and (target / "checkpoints" / str(step)).is_dir()
  for path in later:
    shutil.rmtree(path)
  (target / "config.json").write_text(json.dumps(config_to_dict(config), indent=2))


def damage_compressed_archive(path: pathlib.Path) -> None:
  """Makes the first member of an np.savez_compressed archive undecompressible: its deflate stream's
  first block gets the reserved block type, which zlib refuses (the zip's own structure stays intact)."""
  import struct
  import zipfile

  with zipfile.ZipFile(path) as archive:
    member = archive.infolist()[0]
  data = bytearray(path.read_bytes())
  start = member.header_offset
  name_length, extra_length = struct.unpack("<HH", data[start + 26:start + 30])  # the local file header's
  data[start + 30 + name_length + extra_length] |= 0b110  # BTYPE (bits 1-2) = 11
  path.write_bytes(bytes(data))
