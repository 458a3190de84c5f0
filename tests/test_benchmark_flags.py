"""The benchmarks' start-up checks: a missing PyTorch and an impossible thread count are one-line errors
before anything compiles; their records are strict JSON and name their config; the sampling benchmark's
samplers suit its process."""

import importlib.util
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from benchmarks import timing
from gm_jax.diffusion import processes
from gm_jax.train.defaults import load_config_file
from tests.conftest import REPO
from tests.diffusion.gaussian import exact_field


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


def test_a_record_states_the_references_dtype_beside_the_ratio():
  """The references run in float32 whatever gm_jax's compute dtype, which a bfloat16 ratio is read against."""
  stats = {"jax": {"ms_median": 3.0}, "torch": {"ms_median": 4.0}}
  record = {"compute_dtype": "bfloat16"}
  timing.add_timings(record, stats)
  assert record == {"compute_dtype": "bfloat16", "ms_median": 3.0, "reference_ms_median": 4.0,
                    "reference_dtype": "float32", "ratio": 0.75}
  alone = {}
  timing.add_timings(alone, {"jax": stats["jax"]})
  assert alone == {"ms_median": 3.0}


def test_a_record_is_strict_json_and_a_bad_flag_one_line(capsys):
  timing.emit({"ratio": float("nan"), "reverse_kl": float("inf")})  # bare NaN / Infinity are not JSON
  record = json.loads(capsys.readouterr().out)
  assert record["ratio"] is None and record["reverse_kl"] is None
  usable = len(os.sched_getaffinity(0))
  # It printed the whole usage text too.
  assert benchmark_error("lm_step", f"--threads={usable + 1}") == (
      f"error: --threads={usable + 1}: this process may use {usable} cores; pass 0 (all) to {usable}")
  # A misspelt override of the default config's field (applied as the flag is defined, at import).
  assert benchmark_error("lm_step", "--config.model.num_layer=3") == (
      "error: --config.model.num_layer: the config has no field 'num_layer' (did you mean 'num_layers'?); "
      "see the config file for its fields")


def benchmark_error(name: str, *args: str) -> str:
  """The one line a benchmark run with `args` (and no PyTorch reference) ends with; it must fail."""
  proc = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *args, "--reference=none"],
                        capture_output=True, text=True, cwd=REPO, timeout=120,
                        env={**os.environ, "JAX_PLATFORMS": "cpu"})
  [line] = proc.stderr.strip().splitlines()
  assert proc.returncode == 1, line
  return line


@pytest.mark.parametrize("process", [processes.LinearInterpolant(), processes.VPSDE(),
                                     processes.DiscreteDDPM(processes.linear_betas(10))],
                         ids=["flow_matching", "vp", "ddpm_chain"])
def test_the_sampling_benchmark_times_the_samplers_its_process_admits(process):
  """On flow matching's paths DPM-Solver++ and Euler-Maruyama refused to run (no finite log-SNR at t = 1)
  and stopped the benchmark after its first sampler."""
  from benchmarks import sampling

  denoiser = exact_field(process)
  for name, sampler, kwargs in sampling.sampler_runs(process):
    samples, _ = jax.jit(lambda key: sampler(denoiser, key, (4, 2), **kwargs))(jax.random.key(0))
    assert np.isfinite(np.asarray(samples)).all(), name
  names = [name for name, _, _ in sampling.sampler_runs(process)]
  assert ("dpm_solver_pp_2m" in names) == (not process.ends_in_pure_noise)


@pytest.mark.parametrize("cold", [False, True])
def test_benchmarks_compile_without_the_persistent_cache(tmp_path, cold):
  """With JAX_COMPILATION_CACHE_DIR set (as the README suggests for launches) a rerun timed the cache's read
  as its compile time; the control (cold=False) shows that the program would be cached."""
  script = ("from benchmarks import timing\n" + ("timing.without_persistent_cache()\n" if cold else "") +
            "import jax, jax.numpy as jnp\n"
            "jax.jit(lambda x: jnp.sin(x) @ x)(jnp.ones((8, 8))).block_until_ready()")
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(tmp_path),
         "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
  subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO, env=env, timeout=120)
  assert (not any(tmp_path.iterdir())) == cold


def test_a_file_that_is_no_config_is_one_line(tmp_path):
  """The benchmarks' config flags (e.g. sampling's --lm_config) load files directly: README.md or a Python
  file without get_config() ended in an AttributeError."""
  assert benchmark_error("sampling", "--lm_config=README.md") == (
      "error: 'README.md' is no config file: give a Python file that defines get_config(), e.g. "
      "experiments/configs/digits_ddpm.py")
  (tmp_path / "script.py").write_text("x = 1\n")
  with pytest.raises(ValueError, match=r"script.py' defines no get_config\(\), which a config file must"):
    load_config_file(tmp_path / "script.py")


@pytest.mark.parametrize("arg,name", [("", "markov_lm"), (":tiny", "markov_lm:tiny")])
def test_a_record_names_its_config_with_its_argument(arg, name):
  from absl import flags
  from ml_collections import config_flags

  flag_values = flags.FlagValues()  # a :tiny run's record read as the full config's
  config_flags.DEFINE_config_file("config", None, flag_values=flag_values)
  flag_values(["benchmark", f"--config={REPO / 'experiments' / 'configs' / 'markov_lm.py'}{arg}"])
  assert timing.config_name(flag_values["config"]) == name
