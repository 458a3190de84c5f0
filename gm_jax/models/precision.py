"""Mixed precision: matmuls and convolutions in a compute dtype (bfloat16) accumulated in float32.

`train.compute_dtype` reaches the models as a `dtype` field. Parameters stay float32 (the optimizer
state and EMA with them); only the inputs of matmuls and convolutions are cast, and their results come
out float32 (`preferred_element_type`), so normalization, softmax, logits and likelihoods stay float32.
On XLA:CPU a bfloat16 x bfloat16 -> float32 dot runs on the bfloat16 units, whereas a bfloat16 result
or a mixed float32 x bfloat16 dot is upcast to a float32 one, as are the dots of the automatic backward
pass. `custom_gradient=True` gives a dot its own backward pass in bfloat16 (reverse mode only; the
Transformer uses it); elsewhere the backward pass stays automatic, so that jax.jvp works.
"""

from __future__ import annotations

import functools
import string
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


# The name scope of a table lookup written as a one-hot product: float32 under any compute dtype (its
# values are the table's, which bfloat16 would round).
ONE_HOT_LOOKUP = "one_hot_lookup"


def compute_dtype(name: str) -> Any:
  """The jnp dtype of a `train.compute_dtype` name."""
  if name not in DTYPES:
    raise ValueError(f"train.compute_dtype must be one of {sorted(DTYPES)}, got {name!r}")
  return DTYPES[name]


def is_mixed(dtype: Any) -> bool:
  return jnp.dtype(dtype) != jnp.dtype(jnp.float32)


def _einsum_specs(lhs_ndim: int, rhs_ndim: int, dimension_numbers) -> tuple[str, str, str]:
  """Einsum subscripts (lhs, rhs, out) of a dot_general: out = batch, lhs kept, rhs kept."""
  (lc, rc), (lb, rb) = dimension_numbers
  letters = iter(string.ascii_letters)
  lhs = [next(letters) for _ in range(lhs_ndim)]
  rhs = [""] * rhs_ndim
  for i, j in zip(lc, rc):
    rhs[j] = lhs[i]
  for i, j in zip(lb, rb):
    rhs[j] = lhs[i]
  rhs = [s or next(letters) for s in rhs]
  out = [lhs[i] for i in lb] + [lhs[i] for i in range(lhs_ndim) if i not in lc and i not in lb]
  out += [rhs[j] for j in range(rhs_ndim) if j not in rc and j not in rb]
  return "".join(lhs), "".join(rhs), "".join(out)


def _materialize(x: jax.Array) -> jax.Array:
  """x in a row-major buffer of its own: XLA may neither fold a transpose that made it into its consumer
  nor give it another layout (a flat array has only one)."""
  return lax.optimization_barrier(x.reshape(-1)).reshape(x.shape)


def _transpose_cast(x: jax.Array, perm: list[int], dtype: Any) -> jax.Array:
  if perm == sorted(perm):
    return x.astype(dtype)
  transposed = jnp.transpose(x, perm).astype(dtype)
  return _materialize(transposed) if is_mixed(dtype) else transposed


def _canonical_dot(x: jax.Array, y: jax.Array, x_spec: str, y_spec: str, out_spec: str,
                   dtype: Any) -> jax.Array:
  """einsum(x_spec, y_spec -> out_spec) as one (batch, M, K) x (batch, K, N) matmul of `dtype` operands
  with a float32 result.

  XLA:CPU runs a bfloat16 dot on its bfloat16 units only with plain row-major operands and result:
  it folds a transpose of an operand or of the result into the dot, and then either upcasts the dot to
  float32 or sends it to a generic kernel that lacks the bfloat16 -> float32 case. Transposed bfloat16
  operands and results are therefore materialized (`_materialize`). Float32 ones are left to XLA, which
  folds them into its matmul library's calls or into neighbouring fusions: materializing them costs a
  slow transpose each (the char GPT's float32 step took 10 % longer)."""
  batch = [a for a in x_spec if a in y_spec and a in out_spec]
  contract = [a for a in x_spec if a in y_spec and a not in out_spec]
  x_free = [a for a in x_spec if a not in y_spec]
  y_free = [a for a in y_spec if a not in x_spec]
  size = dict(zip(x_spec, x.shape)) | dict(zip(y_spec, y.shape))
  prod = lambda letters: int(np.prod([size[a] for a in letters], dtype=np.int64))
  xt = _transpose_cast(x, [x_spec.index(a) for a in batch + x_free + contract], dtype)
  yt = _transpose_cast(y, [y_spec.index(a) for a in batch + contract + y_free], dtype)
  if batch:
    z = lax.dot_general(xt.reshape(prod(batch), prod(x_free), prod(contract)),
                        yt.reshape(prod(batch), prod(contract), prod(y_free)),
                        (((2,), (1,)), ((0,), (0,))), preferred_element_type=jnp.float32)
  else:
    z = lax.dot_general(xt.reshape(prod(x_free), prod(contract)), yt.reshape(prod(contract), prod(y_free)),
                        (((1,), (0,)), ((), ())), preferred_element_type=jnp.float32)
  order = batch + x_free + y_free
  perm = [order.index(a) for a in out_spec]
  if perm != sorted(perm) and is_mixed(dtype):
    z = _materialize(z)
  return jnp.transpose(z.reshape([size[a] for a in order]), perm)


def plain_einsum(spec: str, a: jax.Array, b: jax.Array, dtype: Any = jnp.float32) -> jax.Array:
  """A two-operand einsum as one canonical matmul of `dtype` operands with a float32 result (see
  `_canonical_dot`) and the automatic backward pass: for code that writes its own."""
  ls, rest = spec.split(",")
  rs, out = rest.split("->")
  return _canonical_dot(a, b, ls, rs, out, dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _mixed_einsum(x, y, specs: tuple[str, str, str], dtype):
  return _canonical_dot(x, y, *specs, dtype)


def _mixed_einsum_fwd(x, y, specs, dtype):
  return _mixed_einsum(x, y, specs, dtype), (x, y)  # float32 residuals: transposed before the cast


def _mixed_einsum_bwd(specs, dtype, residuals, g):
  x, y = residuals
  xs, ys, out = specs
  dx = _canonical_dot(g, y, out, ys, xs, dtype).astype(x.dtype)
  dy = _canonical_dot(x, g, xs, out, ys, dtype).astype(y.dtype)
  return after(dx, dy), dy


def after(x: jax.Array, dependency: jax.Array) -> jax.Array:
  """x, made to depend on `dependency`: XLA computes it only after the dependency and cannot merge it
  with an equal computation that does not depend on it. XLA:CPU drops optimization barriers before it
  schedules and merges common subexpressions, so this is a data dependence (x + 0 * one element of
  the dependency). It changes no finite value; a non-finite dependency makes x NaN, which the
  trainer's non-finite guard rejects as it would the non-finite gradient that caused it.

  The custom-gradient matmul computes its input gradient after its kernel gradient: XLA:CPU's
  memory-optimized scheduler otherwise leaves the kernel gradients to the end of the backward pass and
  keeps every layer's input and output gradient alive until then (the char GPT step held 2 MB more
  in float32, 9 MB in bfloat16)."""
  return x + jnp.zeros((), x.dtype) * dependency.reshape(-1)[0].astype(x.dtype)


_mixed_einsum.defvjp(_mixed_einsum_fwd, _mixed_einsum_bwd)


def _mixed_dot(lhs, rhs, dimension_numbers, dtype):
  return _mixed_einsum(lhs, rhs, _einsum_specs(lhs.ndim, rhs.ndim, dimension_numbers), dtype)


def dot_general_fn(dtype: Any, custom_gradient: bool = False):
  """A lax.dot_general (Flax's `dot_general` hook) multiplying `dtype` operands with a float32 result.

  custom_gradient=True: as one row-major matmul with its own backward pass, whose two matmuls take
  `dtype` operands too (the incoming gradient rounded to it, as in any bfloat16 training); faster on
  XLA:CPU even in float32, but reverse mode only (no jax.jvp through it). False: the plain dot, whose
  automatic backward pass XLA:CPU computes in float32."""

  def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None, **kwargs):
    del preferred_element_type, kwargs
    if custom_gradient:
      return _mixed_dot(lhs, rhs, dimension_numbers, dtype)
    if not is_mixed(dtype):
      return lax.dot_general(lhs, rhs, dimension_numbers, precision=precision)
    return lax.dot_general(lhs.astype(dtype), rhs.astype(dtype), dimension_numbers,
                           preferred_element_type=jnp.float32)

  return dot_general


def einsum(spec: str, a: jax.Array, b: jax.Array, dtype: Any = jnp.float32,
           custom_gradient: bool = False) -> jax.Array:
  """Two-operand einsum of `dtype` operands with a float32 result (see `dot_general_fn`)."""
  if custom_gradient:
    ls, rest = spec.split(",")
    rs, out = rest.split("->")
    return _mixed_einsum(a, b, (ls, rs, out), dtype)
  if not is_mixed(dtype):
    return jnp.einsum(spec, a, b)
  return jnp.einsum(spec, a.astype(dtype), b.astype(dtype), preferred_element_type=jnp.float32)


def matmul(a: jax.Array, b: jax.Array, dtype: Any = jnp.float32, custom_gradient: bool = False) -> jax.Array:
  """a @ b over the last axis of a and the first of b (see `dot_general_fn`)."""
  return dot_general_fn(dtype, custom_gradient)(a, b, (((a.ndim - 1,), (0,)), ((), ())))


def _conv_f32_result(lhs, rhs, *args, preferred_element_type=None, **kwargs):
  del preferred_element_type
  return lax.conv_general_dilated(lhs, rhs, *args, preferred_element_type=jnp.float32, **kwargs)


def conv(x: jax.Array, kernel: jax.Array, *args, dtype: Any = jnp.float32, **kwargs) -> jax.Array:
  """lax.conv_general_dilated of `dtype` operands with a float32 result."""
  if not is_mixed(dtype):
    return lax.conv_general_dilated(x, kernel, *args, **kwargs)
  return _conv_f32_result(x.astype(dtype), kernel.astype(dtype), *args, **kwargs)


def Dense(*args, dtype: Any = jnp.float32, custom_gradient: bool = False, **kwargs) -> nn.Dense:  # noqa: N802
  """nn.Dense computing in `dtype` with float32 parameters and a float32 result."""
  if not is_mixed(dtype) and not custom_gradient:
    return nn.Dense(*args, **kwargs)
  return nn.Dense(*args, dot_general=dot_general_fn(dtype, custom_gradient), **kwargs)


def Conv(*args, dtype: Any = jnp.float32, **kwargs) -> nn.Conv:  # noqa: N802 (a layer factory)
  """nn.Conv computing in `dtype` with float32 parameters and a float32 result; only the convolution's
  operands are cast (nn.Conv's own `dtype` would round the bias, its value and gradient, to `dtype`)."""
  if not is_mixed(dtype):
    return nn.Conv(*args, **kwargs)
  return nn.Conv(*args, conv_general_dilated=functools.partial(conv, dtype=dtype), **kwargs)
