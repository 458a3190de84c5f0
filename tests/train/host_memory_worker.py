"""Prints the median minor page faults per call of a jitted function whose temporary buffer (48 MB)
is larger than glibc's largest mmap threshold (32 MB), before and after
gm_jax.train.host_memory.keep_freed_memory(), as JSON."""

import json
import resource
import statistics

import jax
import jax.numpy as jnp

from gm_jax.train import host_memory


def faults_per_call(fn, x, calls: int = 10) -> float:
  for _ in range(3):
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
  default = faults_per_call(fn, x)
  kept = host_memory.keep_freed_memory()
  print(json.dumps({"temp_pages": temp / resource.getpagesize(), "faults_default": default,
                    "kept": kept, "faults_kept": faults_per_call(fn, x)}))


if __name__ == "__main__":
  main()
