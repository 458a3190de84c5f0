"""Host memory for XLA:CPU steps: keep freed memory in the process for the next step.

XLA:CPU allocates a step's temporary buffer (48 MB for the char GPT's train step) with malloc when the
step starts and frees it when it ends. glibc serves a block that large from a fresh anonymous mapping
and unmaps it on free, so every step faults the whole buffer back in, page by page: 12,349 page faults
per char-GPT step, a quarter of its time. Serving large blocks from the heap and never trimming it
lets each step reuse the memory the previous one freed; the cost is that the process's resident memory
stays at its peak. The first few steps afterwards still fault while the heap grows to hold every buffer
in flight (a step's buffer is freed just after its result is ready, so the next step may start first);
then a step rarely does (a few in a hundred). Accelerator backends keep their buffers in device memory
and are left as they are.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import jax

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_MAX = -4
M_ARENA_MAX = -8


@functools.cache
def keep_freed_memory() -> bool:
  """Sets glibc's allocator to serve every block from its heap and keep freed memory (once per process,
  on the CPU backend only); returns whether it did (False elsewhere, or without glibc)."""
  if jax.default_backend() != "cpu":
    return False
  try:
    mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
  except (OSError, AttributeError, TypeError):  # no C library by that name, or not glibc
    return False
  settings = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2**31 - 1))
  return all(mallopt(param, value) for param, value in settings)
