"""The benchmarks' per-operation profile finds a step's expensive operation and names its source; their
FLOP count is withheld only where XLA's would be wrong."""

import jax
import jax.numpy as jnp
import pytest

from benchmarks.timing import compiled_flops, op_profile


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


MATMUL_FLOPS = 2 * 64 ** 3


@pytest.mark.parametrize("name, fn, expected", [
    ("matmul", lambda a: a @ a, "exact"),
    # XLA:CPU keeps the random-bit generator's rounds as a loop of integer work: the count stands.
    ("matmul of random numbers", lambda a: a @ jax.random.normal(jax.random.key(0), a.shape), "at least"),
    # XLA counts a loop's body once, whatever its trip count.
    ("scanned matmuls", lambda a: jax.lax.scan(lambda c, _: (c @ a, None), a, None, length=4)[0], None),
    ("matmul in a branch in a loop", lambda a: jax.lax.fori_loop(
        0, 3, lambda i, c: jax.lax.cond(i > 1, lambda x: x @ a, lambda x: x + 1, c), a), None),
])
def test_compiled_flops_only_where_xla_counts_right(name, fn, expected):
  flops = compiled_flops(jax.jit(fn).lower(jnp.ones((64, 64))).compile())
  if expected is None:
    assert flops is None, name
  elif expected == "exact":
    assert flops == MATMUL_FLOPS, name
  else:
    assert MATMUL_FLOPS <= flops < 2 * MATMUL_FLOPS, (name, flops)
