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


def emit(record: dict[str, Any]) -> None:
  """Prints one benchmark record as a JSON line, with the platform it ran on."""
  record = {"backend": jax.default_backend(), "devices": jax.device_count(), **record}
  print(json.dumps(record, sort_keys=True), flush=True)
