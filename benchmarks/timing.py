"""Timing helpers shared by the benchmarks: compile time, then the median of repeated runs."""

from __future__ import annotations

import collections
import pathlib
import re
import statistics
import tempfile
import time
from typing import Any, Callable

import jax

from gm_jax.train.run_files import to_json


def time_calls(fn: Callable[[], Any], warmup: int = 2, repeats: int = 10) -> dict[str, float]:
  """Runs fn (which must block on its result) warmup + repeats times; returns ms statistics."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append((time.perf_counter() - start) * 1e3)
  return {"ms_median": statistics.median(times), "ms_min": min(times), "ms_max": max(times),
          "repeats": repeats}


def compiled_flops(compiled) -> float | None:
  """FLOPs of one call of a compiled function on one device (XLA's cost analysis of the partitioned
  program: on several devices each one's share, as the MFU against one device's matmul peak wants); None
  if unavailable, or if a loop holds a matmul or a convolution (XLA counts a while loop's body once,
  whatever its trip count: a GAN's critic updates, scanned layers). Loops of integer work, such as the
  rounds of the random-bit generator XLA may keep rolled, do not stop the count."""
  if _loop_does_matmuls(compiled.as_text() or ""):
    return None
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else None
  return float(analysis["flops"]) if analysis and "flops" in analysis else None


def _loop_does_matmuls(hlo: str) -> bool:
  """Whether the body of some while loop of an HLO module, or a computation it calls, has a dot or a
  convolution. (HLO names are unique in a module, so a name that is a computation's is a call of it.)"""
  bodies = {}
  for match in re.finditer(r"^(?:ENTRY )?%([\w.\-]+) [^\n]*\{\n(.*?)\n\}", hlo, re.S | re.M):
    bodies[match.group(1)] = match.group(2)

  def heavy(name, seen):
    if name in seen or name not in bodies:
      return False
    seen.add(name)
    text = bodies[name]
    return (re.search(r"= \S+ (?:dot|convolution)\(", text) is not None
            or any(heavy(called, seen) for called in re.findall(r"%([\w.\-]+)", text)))  # callees

  return any(heavy(body, set()) for body in re.findall(r"\bwhile\([^\n]*?body=%([\w.\-]+)", hlo))


def emit(record: dict[str, Any]) -> None:
  """Prints one benchmark record as a JSON line, with the platform it ran on."""
  record = {"backend": jax.default_backend(), "devices": jax.device_count(), **record}
  print(to_json(record), flush=True)  # strict JSON: NaN and inf as null


def time_interleaved(fns: dict[str, Callable[[], Any]], warmup: int = 2, rounds: int = 10,
                     per_round: int = 5) -> dict[str, dict[str, float]]:
  """Times several blocking fns against each other on a noisy machine: after `warmup` calls of each,
  `rounds` rounds in which every fn runs `per_round` times in turn, so that load changes hit all of them
  alike. Returns ms statistics per name over all rounds."""
  for fn in fns.values():
    for _ in range(warmup):
      fn()
  times: dict[str, list[float]] = {name: [] for name in fns}
  for _ in range(rounds):
    for name, fn in fns.items():
      for _ in range(per_round):
        start = time.perf_counter()
        fn()
        times[name].append((time.perf_counter() - start) * 1e3)
  return {name: {"ms_median": statistics.median(t), "ms_min": min(t), "ms_max": max(t), "repeats": len(t)}
          for name, t in times.items()}


# The PyTorch references run in float32 whatever gm_jax's compute dtype: the goals compare a bfloat16 step
# with PyTorch's float32 one, and each record says so.
REFERENCE_DTYPE = "float32"


def add_timings(record: dict[str, Any], stats: dict[str, dict[str, float]]) -> None:
  """time_interleaved's gm_jax ("jax") timings into `record`, with the PyTorch reference's ("torch") median,
  its dtype and the ratio gm_jax / PyTorch when the reference ran."""
  record.update(stats["jax"])
  if "torch" in stats:
    record["reference_ms_median"] = stats["torch"]["ms_median"]
    record["reference_dtype"] = REFERENCE_DTYPE
    record["ratio"] = stats["jax"]["ms_median"] / stats["torch"]["ms_median"]


def matmul_peaks(n: int = 1024) -> dict[str, float]:
  """Measured matmul FLOP/s in JAX for float32 and for bfloat16 inputs with float32 accumulation."""
  import jax.numpy as jnp

  out = {}
  for name, dtype in (("float32", jnp.float32), ("bfloat16", jnp.bfloat16)):
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32).astype(dtype)
    matmul = jax.jit(lambda x: jnp.matmul(x, x, preferred_element_type=jnp.float32))
    stats = time_calls(lambda: matmul(a).block_until_ready(), warmup=2, repeats=10)
    out[name] = 2 * n**3 / (stats["ms_min"] / 1e3)
  return out


def jax_step_memory_bytes(compiled) -> int | None:
  """Bytes a compiled step holds at its peak on one device: arguments, outputs (less donated aliases) and
  temporaries."""
  m = compiled.memory_analysis()
  if m is None:
    return None
  return int(m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes)


def config_name(config_flag) -> str:
  """The stem of a config_file flag's file and its argument (e.g. shakespeare_char_cpu:tiny), for the JSON
  record: a :tiny run's numbers are not the full config's."""
  from ml_collections import config_flags

  file, _, arg = config_flags.get_config_filename(config_flag).partition(":")
  return pathlib.Path(file).stem + (f":{arg}" if arg else "")


def require_reference(reference: str) -> None:
  """Fails at once, in one line, when the PyTorch reference is asked for but PyTorch is not installed."""
  import importlib.util

  if reference == "torch" and importlib.util.find_spec("torch") is None:
    raise ValueError('PyTorch is not installed: pip install -e ".[bench]", or pass --reference=none')


def without_persistent_cache() -> None:
  """Compile times are measured cold: with JAX's persistent cache on (JAX_COMPILATION_CACHE_DIR, as the
  README suggests for launches) a rerun would time the cache's read (5.8 s compiles read back in 0.9)."""
  jax.config.update("jax_enable_compilation_cache", False)


def use_threads(n: int) -> int:
  """Restricts this process to its first n cores (0: all it may use) before JAX starts its CPU backend,
  so that gm_jax and the PyTorch reference run with the same number of threads; returns that number.
  On one core XLA:CPU's thread pool is turned off: its second thread would only preempt the first."""
  import os

  cores = sorted(os.sched_getaffinity(0))
  if not 0 <= n <= len(cores):
    raise ValueError(f"--threads={n}: this process may use {len(cores)} cores; pass 0 (all) to "
                     f"{len(cores)}")
  if n:
    cores = cores[:n]
    os.sched_setaffinity(0, cores)
  if len(cores) == 1:
    existing = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = (existing + " --xla_cpu_multi_thread_eigen=false").strip()
  return len(cores)


def op_profile(lowered, run: Callable[[Any], None], steps: int = 2, top: int = 15) -> list[dict[str, Any]]:
  """The `top` operations of a compiled step by time, from XLA's own trace events.

  `lowered` is compiled again with XLA:CPU's per-operation trace events on, and `run(compiled)` (which
  must block on its result) is called `steps` times under `jax.profiler`. Each returned entry names an
  HLO operation of the step, its milliseconds per step summed over threads, its result shape and the
  JAX operation it came from (its `op_name` metadata); the operations in a loop's body are listed by
  themselves, beside the loop."""
  from jax.profiler import ProfileData

  compiled = lowered.compile({"xla_cpu_enable_xprof_traceme": True})
  run(compiled)  # warm-up, outside the trace
  with tempfile.TemporaryDirectory() as trace_dir:
    jax.profiler.start_trace(trace_dir)
    try:
      for _ in range(steps):
        run(compiled)
    finally:
      jax.profiler.stop_trace()
    profile = ProfileData.from_file(str(max(pathlib.Path(trace_dir).rglob("*.xplane.pb"))))
  hlo = compiled.as_text()
  instructions = set(re.findall(r"%([\w.\-]+) = ", hlo))
  ns = collections.Counter()
  for plane in profile.planes:
    for line in plane.lines:
      for event in line.events:
        if event.name in instructions:
          ns[event.name] += event.duration_ns
  entries = []
  for name, total in ns.most_common(top):
    definition = re.search(r"%" + re.escape(name) + r" = (.+?) [\w\-]+\([^\n]*", hlo)
    called = re.search(r"calls=%([\w.\-]+)", definition.group(0))
    # A fusion's metadata names its root; the matmul or convolution inside is what costs.
    body = (re.search(r"\n%" + re.escape(called.group(1)) + r" [^\n]*\{\n(.*?)\n\}", hlo, re.S)
            if called else None)
    heavy = re.search(r"= \S+ (?:convolution|dot)\([^\n]*", body.group(1)) if body else None
    source = re.search(r'op_name="([^"]*)"', (heavy or definition).group(0))
    entries.append({"op": name, "ms_per_step": total / 1e6 / steps, "shape": definition.group(1),
                    "source": source.group(1) if source else None})
  return entries
