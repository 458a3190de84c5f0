"""The recomputing causal self-attention: the same values and gradients as attention written out with
an automatic backward pass, with and without rotary positions, in float32 and bfloat16."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.models import precision
from gm_jax.models.attention import causal_self_attention, rotary, rotary_tables

B, T, H, D = 2, 9, 3, 8


def _written_out(qkv, rotary_positions):
  q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
  if rotary_positions:
    cos, signed_sin = rotary_tables(T, D)
    q, k = rotary(q, cos, signed_sin), rotary(k, cos, signed_sin)
  scores = jnp.einsum("bthd,bshd->bhts", q, k) / np.sqrt(D)
  scores = jnp.where(np.tril(np.ones((T, T), bool)), scores, -np.inf)
  return jnp.einsum("bhts,bshd->bthd", jax.nn.softmax(scores, axis=-1), v)


@pytest.mark.parametrize("rotary_positions", [False, True])
@pytest.mark.parametrize("dtype, tol", [("float32", 1e-5), ("bfloat16", 3e-2)])
def test_recomputing_attention_equals_the_written_out_one(rotary_positions, dtype, tol):
  qkv = jax.random.normal(jax.random.key(0), (B, T, 3, H, D))
  weights = jax.random.normal(jax.random.key(1), (B, T, H, D))  # a loss that weighs every output
  loss = lambda f: lambda a: jnp.sum(jnp.sin(f(a)) * weights)
  want = jax.value_and_grad(loss(lambda a: _written_out(a, rotary_positions)))(qkv)
  attend = lambda a: causal_self_attention(a, rotary_positions, precision.compute_dtype(dtype))
  got = jax.jit(jax.value_and_grad(loss(attend)))(qkv)
  assert got[1].shape == qkv.shape and got[1].dtype == jnp.float32
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, atol=tol * max(1.0, float(jnp.max(jnp.abs(w)))))
