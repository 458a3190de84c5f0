"""The benchmarks' per-operation profile finds a step's expensive operation and names its source."""

import jax
import jax.numpy as jnp

from benchmarks.timing import op_profile


def test_op_profile_ranks_the_matmul_first():
  step = jax.jit(lambda a, b: jnp.sin(a[:64]).sum() + (a @ b).sum())
  a = jax.random.normal(jax.random.key(0), (1024, 1024))
  lowered = step.lower(a, a)
  calls = []

  def run(compiled):
    calls.append(1)
    compiled(a, a).block_until_ready()

  ops = op_profile(lowered, run, steps=3, top=3)
  assert len(calls) == 4  # one warm-up, three traced
  assert ops[0]["source"].endswith("dot_general"), ops
  assert ops[0]["ms_per_step"] > max(op["ms_per_step"] for op in ops[1:])
  assert all(op["ms_per_step"] > 0 and op["shape"].startswith(("f32", "(")) for op in ops)
