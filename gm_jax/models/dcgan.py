"""The DCGAN of seed 004, layer for layer, parameterized by feature width and image size.

Generator: Linear(z -> 8F * s * s, no bias) -> BatchNorm -> ReLU -> reshape (s, s, 8F) -> transposed convs
5x5 stride 2 (padding 2, output padding 1, no bias) with BatchNorm + ReLU halving the width each time
-> a last 5x5 stride-2 transposed conv to the image channels -> tanh. s is the base size (4 for 64x64).
Discriminator: 4x4 stride-2 conv + LeakyReLU(0.2) -> 4x4 stride-2 convs with normalization + LeakyReLU
doubling the width -> an s x s valid conv to one logit. All weights start from N(0, 0.02) and BatchNorm
scales from N(1, 0.02), as the seed's weights_init. For WGAN-GP the critic's normalization must not mix
examples: `norm='layer'` (or 'none') replaces BatchNorm there.
Class-conditional (num_classes > 0): the generator reads z with the label's one-hot vector appended, and
the discriminator is a projection discriminator (Miyato & Koyama 2018): its logit gains the inner product
of a learned class vector with the features phi(x) its last (linear) layer reads.

The transposed convolution is computed in its sub-pixel form: a stride-2, 5x5 transposed convolution
equals a 3x3 convolution to 4x the channels followed by depth-to-space (each output parity only meets
a 3x3 neighbourhood of the input). It is the same function, with the same parameters (the 5x5 kernel),
but its backward pass is an ordinary convolution, which XLA:CPU runs many times faster than the
transposed convolution's. For the same reason the discriminator's 4x4 stride-2 convolutions compute
their input gradient (a transposed convolution) in sub-pixel form (`conv_4x4_stride2`).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gm_jax.models import labels, precision

dcgan_init = nn.initializers.normal(0.02)


def _bn_scale_init(key, shape, dtype=jnp.float32):
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


# For output parity a in {0, 1} and input offset d in {-1, 0, 1}: which of the 5 kernel taps connects
# them (o = 2 i - 2 + k with o = 2 m + a, i = m + d), or None.
_TAP = {(0, -1): 4, (0, 0): 2, (0, 1): 0, (1, -1): None, (1, 0): 3, (1, 1): 1}


# Every tap of the 5x5 kernel lands in exactly one of the 3x3 kernel's 36 (dy, dx, row parity, column
# parity) slots; the other 11 slots are zero. _SLOT_TAPS[s] is slot s's tap (row-major in 5 x 5) or None.
_SLOT_TAPS = [None if _TAP[(a, dy)] is None or _TAP[(b, dx)] is None else 5 * _TAP[(a, dy)] + _TAP[(b, dx)]
              for dy in (-1, 0, 1) for dx in (-1, 0, 1) for a in (0, 1) for b in (0, 1)]
_TAP_SLOTS = [_SLOT_TAPS.index(t) for t in range(25)]


@jax.custom_vjp
def subpixel_kernel(kernel_55IO: jax.Array) -> jax.Array:
  """The 3x3 kernel, (3, 3, I, 4 * O) with outputs ordered (row parity, column parity, O), of the
  convolution that computes a 5x5 stride-2 transposed convolution (padding 2, output padding 1).

  A permutation of the taps with zero fill, so its gradient is the inverse permutation, written out
  below: the automatic one pads each tap's gradient to the whole kernel and sums them (XLA:CPU spent
  a tenth of the DCGAN-64 step there)."""
  i_ch, o_ch = kernel_55IO.shape[2:]
  taps = kernel_55IO.reshape(25, i_ch, o_ch)
  zeros = jnp.zeros((i_ch, o_ch), kernel_55IO.dtype)
  slots = jnp.stack([zeros if t is None else taps[t] for t in _SLOT_TAPS]).reshape(3, 3, 4, i_ch, o_ch)
  return jnp.transpose(slots, (0, 1, 3, 2, 4)).reshape(3, 3, i_ch, 4 * o_ch)


def _subpixel_kernel_fwd(kernel_55IO):
  return subpixel_kernel(kernel_55IO), None


def _subpixel_kernel_bwd(_, grad_33IP):
  i_ch, o_ch = grad_33IP.shape[2], grad_33IP.shape[3] // 4
  slots = jnp.transpose(grad_33IP.reshape(3, 3, i_ch, 4, o_ch), (0, 1, 3, 2, 4)).reshape(36, i_ch, o_ch)
  return (jnp.stack([slots[s] for s in _TAP_SLOTS]).reshape(5, 5, i_ch, o_ch),)


subpixel_kernel.defvjp(_subpixel_kernel_fwd, _subpixel_kernel_bwd)


def depth_to_space(x_BHWC: jax.Array) -> jax.Array:
  """(B, H, W, 4 C) with channels ordered (row parity, column parity, C) -> (B, 2H, 2W, C)."""
  b, h, w, c4 = x_BHWC.shape
  c = c4 // 4
  x = x_BHWC.reshape(b, h, w, 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, 2 * h, 2 * w, c)


def _conv(x_BHWC, kernel_HWIO, stride: int, padding: int, dtype):
  """An NHWC convolution with a square stride and symmetric padding, in `dtype` (gm_jax.models.precision)."""
  return precision.conv(x_BHWC, kernel_HWIO, (stride, stride), ((padding, padding),) * 2,
                        dimension_numbers=("NHWC", "HWIO", "NHWC"), dtype=dtype)


def _conv_4x4_stride2(x_BHWC, kernel_44IO, dtype):
  return _conv(x_BHWC, kernel_44IO, 2, 1, dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_4x4_stride2(x_BHWC: jax.Array, kernel_44IO: jax.Array, dtype: Any) -> jax.Array:
  """The discriminator's 4x4 stride-2 convolution with padding 1 (even sizes), with its input gradient
  in sub-pixel form (see `_conv_4x4_stride2_bwd`); the automatic one is an input-dilated convolution,
  which XLA:CPU runs on a generic kernel."""
  return _conv_4x4_stride2(x_BHWC, kernel_44IO, dtype)


def _conv_4x4_stride2_fwd(x_BHWC, kernel_44IO, dtype):
  return _conv_4x4_stride2(x_BHWC, kernel_44IO, dtype), (x_BHWC, kernel_44IO)


def _conv_4x4_stride2_bwd(dtype, residuals, grad_BHWO):
  """Input row 2p - 1 receives output rows p (kernel row 0) and p - 1 (row 2); input row 2p receives
  output rows p (row 1) and p - 1 (row 3). So a 2x2 convolution over the output gradient padded by one,
  to 4x the channels (one per input parity), gives both input rows of every p; depth-to-space and
  cropping the first and last row (and column) give the input gradient. Every kernel tap is used once."""
  x_BHWC, kernel_44IO = residuals
  _, _, c, o = kernel_44IO.shape
  # (row pair e', row parity q, column pair, column parity, in, out) -> taps (1 - e', q) for offset e.
  pairs = kernel_44IO.reshape(2, 2, 2, 2, c, o)[::-1, :, ::-1]
  kernel_22OP = jnp.transpose(pairs, (0, 2, 5, 1, 3, 4)).reshape(2, 2, o, 4 * c)
  cells = _conv(grad_BHWO, kernel_22OP, 1, 1, dtype)
  grad_x = depth_to_space(cells)[:, 1:-1, 1:-1]
  _, kernel_vjp = jax.vjp(lambda k: _conv_4x4_stride2(x_BHWC, k, dtype), kernel_44IO)
  return grad_x.astype(x_BHWC.dtype), kernel_vjp(grad_BHWO)[0]


conv_4x4_stride2.defvjp(_conv_4x4_stride2_fwd, _conv_4x4_stride2_bwd)


class Conv4x4Stride2(nn.Module):
  """nn.Conv(features, (4, 4), (2, 2), padding=1) with the same parameters, computed by
  `conv_4x4_stride2` (a plain strided convolution when a size is odd)."""

  features: int
  dtype: Any = jnp.float32  # compute dtype (gm_jax.models.precision); the result is float32

  @nn.compact
  def __call__(self, x_BHWC):
    kernel = self.param("kernel", dcgan_init, (4, 4, x_BHWC.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    if x_BHWC.shape[1] % 2 or x_BHWC.shape[2] % 2:
      return _conv_4x4_stride2(x_BHWC, kernel, self.dtype) + bias
    return conv_4x4_stride2(x_BHWC, kernel, self.dtype) + bias


def _conv_3x3(x_BHWI, kernel_33IP, dtype):
  return _conv(x_BHWI, kernel_33IP, 1, 1, dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_3x3(x_BHWI: jax.Array, kernel_33IP: jax.Array, dtype: Any) -> jax.Array:
  """A 3x3 stride-1 convolution with padding 1, with its kernel gradient as nine matmuls (see
  `_conv_3x3_bwd`); XLA:CPU's own is a convolution with a window the size of the image over transposed
  operands, the slowest part of the DCGAN-64 generator's backward pass."""
  return _conv_3x3(x_BHWI, kernel_33IP, dtype)


def _conv_3x3_fwd(x_BHWI, kernel_33IP, dtype):
  return _conv_3x3(x_BHWI, kernel_33IP, dtype), (x_BHWI, kernel_33IP)


def _conv_3x3_bwd(dtype, residuals, grad_BHWP):
  """The kernel's gradient at tap (dy, dx) is grad^T @ (the input shifted by (dy, dx)) over all batch
  rows and pixels: one transpose of the gradient serves the nine products."""
  x_BHWI, kernel_33IP = residuals
  b, h, w, i = x_BHWI.shape
  padded = jnp.pad(x_BHWI, ((0, 0), (1, 1), (1, 1), (0, 0)))
  grad_PN = grad_BHWP.reshape(b * h * w, -1).T
  taps = [precision.matmul(grad_PN, padded[:, dy:dy + h, dx:dx + w].reshape(b * h * w, i), dtype)
          for dy in range(3) for dx in range(3)]
  grad_kernel = jnp.transpose(jnp.stack(taps).reshape(3, 3, -1, i), (0, 1, 3, 2))
  _, input_vjp = jax.vjp(lambda x: _conv_3x3(x, kernel_33IP, dtype), x_BHWI)
  return input_vjp(grad_BHWP)[0], grad_kernel.astype(kernel_33IP.dtype)


conv_3x3.defvjp(_conv_3x3_fwd, _conv_3x3_bwd)


class ConvTranspose5x5Stride2(nn.Module):
  """PyTorch's ConvTranspose2d(kernel_size=5, stride=2, padding=2, output_padding=1): (H, W) -> (2H, 2W).

  The kernel is stored as (5, 5, in, out) with y[o] = sum_i x[i] kernel[o - 2 i + 2] (no flip), i.e.
  PyTorch's weight (in, out, 5, 5) transposed to (5, 5, in, out).
  """

  features: int
  use_bias: bool = False
  dtype: Any = jnp.float32  # compute dtype (gm_jax.models.precision); the result is float32

  @nn.compact
  def __call__(self, x_BHWC):
    kernel = self.param("kernel", dcgan_init, (5, 5, x_BHWC.shape[-1], self.features))
    y = conv_3x3(x_BHWC, subpixel_kernel(kernel), self.dtype)
    y = depth_to_space(y)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return y


def reference_conv_transpose(x_BHWC: jax.Array, kernel_55IO: jax.Array) -> jax.Array:
  """The same transposed convolution the textbook way (input dilation, flipped kernel); for tests."""
  return jax.lax.conv_general_dilated(x_BHWC, kernel_55IO[::-1, ::-1], (1, 1), ((2, 3), (2, 3)),
                                      lhs_dilation=(2, 2), dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _num_upsamplings(image_size: int) -> tuple[int, int]:
  """(number of stride-2 layers, base size) with base = image_size / 2^n in [3, 4] (64 -> 4 layers, 4)."""
  n = max(1, int(math.floor(math.log2(image_size / 4))))
  base = image_size // 2**n
  if base * 2**n != image_size:
    raise ValueError(f"DCGAN image size {image_size} must be a base of 3 to 7 times a power of two")
  return n, base


def _batch_norm(train: bool, name=None):
  # PyTorch's BatchNorm momentum 0.1 is flax's 0.9; eps 1e-5 as PyTorch.
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, scale_init=_bn_scale_init,
                      name=name)


class DCGANGenerator(nn.Module):
  image_size: int = 64
  channels: int = 3
  features: int = 64
  compute_dtype: str = "float32"  # of matmuls and convolutions; BatchNorm statistics stay float32
  num_classes: int = 0

  @nn.compact
  def __call__(self, z, label_B=None, train: bool = True):
    n, base = _num_upsamplings(self.image_size)
    width = self.features * 2 ** (n - 1)
    dtype = precision.compute_dtype(self.compute_dtype)
    z = labels.append_one_hot(z, label_B, self.num_classes)
    h = precision.Dense(width * base * base, dtype=dtype, use_bias=False, kernel_init=dcgan_init)(z)
    h = nn.relu(_batch_norm(train)(h))
    # PyTorch views the vector as (C, s, s): reorder to (s, s, C) for NHWC.
    h = h.reshape(z.shape[0], width, base, base).transpose(0, 2, 3, 1)
    for _ in range(n - 1):
      width //= 2
      h = nn.relu(_batch_norm(train)(ConvTranspose5x5Stride2(width, dtype=dtype)(h)))
    return jnp.tanh(ConvTranspose5x5Stride2(self.channels, dtype=dtype)(h))


class DCGANDiscriminator(nn.Module):
  """Returns one logit per image (no sigmoid: the losses take logits; WGAN critics need none)."""

  image_size: int = 64
  features: int = 64
  norm: str = "batch"  # batch | layer | none
  compute_dtype: str = "float32"  # of the convolutions; normalization statistics stay float32
  num_classes: int = 0

  @nn.compact
  def __call__(self, x, label_B=None, train: bool = True):
    n, base = _num_upsamplings(self.image_size)
    dtype = precision.compute_dtype(self.compute_dtype)
    # Named as nn.Conv layers are, so that the parameter tree stays the one they gave.
    h = nn.leaky_relu(Conv4x4Stride2(self.features, dtype=dtype, name="Conv_0")(x), 0.2)
    width = self.features
    for i in range(1, n):
      width *= 2
      h = Conv4x4Stride2(width, dtype=dtype, name=f"Conv_{i}")(h)
      if self.norm == "batch":
        h = _batch_norm(train)(h)
      elif self.norm == "layer":
        h = nn.LayerNorm(epsilon=1e-5)(h)
      elif self.norm != "none":
        raise ValueError(f"unknown discriminator norm {self.norm!r}; use batch, layer or none")
      h = nn.leaky_relu(h, 0.2)
    logit = precision.Conv(1, (base, base), padding="VALID", kernel_init=dcgan_init, dtype=dtype,
                           name=f"Conv_{n}")(h).reshape(x.shape[0])  # a linear function of phi(x) = h
    return logit + labels.projection(h.reshape(x.shape[0], -1), label_B, self.num_classes)
