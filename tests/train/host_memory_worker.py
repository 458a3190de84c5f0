"""Prints the median minor page faults per call (after warm-up calls) of a jitted function whose
temporary buffer (48 MB) is larger than glibc's largest mmap threshold (32 MB), before and after
gm_jax.train.host_memory.keep_freed_memory(), as JSON."""

import json
import resource
import statistics

import jax
import jax.numpy as jnp

from gm_jax.train import host_memory


def faults_per_call(fn, x, warmup: int, calls: int) -> float:
  for _ in range(warmup):
    jax.block_until_ready(fn(x))
  faults = []
  for _ in range(calls):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    jax.block_until_ready(fn(x))
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
  return statistics.median(faults)


def main():
  x = jnp.ones((2048, 6144), jnp.float32)
  fn = jax.jit(lambda x: jnp.sum(jnp.flip(jnp.sin(x), 0)[::2] * jnp.cos(x)[1::2]))
  temp = fn.lower(x).compile().memory_analysis().temp_size_in_bytes
  default = faults_per_call(fn, x, warmup=3, calls=10)
  kept = host_memory.keep_freed_memory()
  # The first calls afterwards still fault while the heap grows to hold the buffers of calls in flight.
  print(json.dumps({"temp_pages": temp / resource.getpagesize(), "faults_default": default,
                    "kept": kept, "faults_kept": faults_per_call(fn, x, warmup=20, calls=40)}))


if __name__ == "__main__":
  main()
