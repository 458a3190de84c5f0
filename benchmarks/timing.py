"""Timing helpers shared by the benchmarks: compile time, then the median of repeated runs."""

from __future__ import annotations

import json
import statistics
import time
from typing import Any, Callable

import jax


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


def matmul_peak_flops(n: int = 2048, repeats: int = 10) -> float:
  """The machine's measured fp32 matmul throughput (FLOP/s) in JAX: the denominator of utilization."""
  import jax.numpy as jnp

  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  matmul = jax.jit(lambda x: x @ x)
  stats = time_calls(lambda: matmul(a).block_until_ready(), warmup=2, repeats=repeats)
  return 2 * n**3 / (stats["ms_min"] / 1e3)


def compiled_flops(compiled) -> float | None:
  """FLOPs of one call of a compiled function, from XLA's cost analysis (None if unavailable)."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else None
  return float(analysis["flops"]) if analysis and "flops" in analysis else None


def emit(record: dict[str, Any]) -> None:
  """Prints one benchmark record as a JSON line, with the platform it ran on."""
  record = {"backend": jax.default_backend(), "devices": jax.device_count(), **record}
  print(json.dumps(record, sort_keys=True), flush=True)
