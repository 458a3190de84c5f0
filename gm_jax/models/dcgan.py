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

The transposed convolution is computed by output parity (`conv_transpose_5x5_stride2`): each of the
four (row parity, column parity) grids of a stride-2, 5x5 transposed convolution's output is an ordinary
stride-1 convolution of the input with the taps that reach it (3x3, 3x2, 2x3 or 2x2: 25 in all), and
depth-to-space interleaves the four. It is the same function, with the same parameters (the 5x5 kernel),
but its forward and backward passes are ordinary convolutions, which XLA:CPU runs many times faster than
the transposed convolution's input-dilated ones. For the same reason the discriminator's 4x4 stride-2
convolutions compute their input gradient (a transposed convolution) by parity too (`conv_4x4_stride2`).
Toward an image's few channels the input-dilated form is the faster one, and is kept there.
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


def depth_to_space(x_BHWC: jax.Array) -> jax.Array:
  """(B, H, W, 4 C) with channels ordered (row parity, column parity, C) -> (B, 2H, 2W, C)."""
  b, h, w, c4 = x_BHWC.shape
  c = c4 // 4
  x = x_BHWC.reshape(b, h, w, 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, 2 * h, 2 * w, c)


def space_to_depth(x_BHWC: jax.Array) -> jax.Array:
  """(B, 2H, 2W, C) -> (B, H, W, 4 C) with channels ordered (row parity, column parity, C)."""
  b, h2, w2, c = x_BHWC.shape
  x = x_BHWC.reshape(b, h2 // 2, 2, w2 // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h2 // 2, w2 // 2, 4 * c)


def _conv(x_BHWC, kernel_HWIO, stride: int, padding: int, dtype):
  """An NHWC convolution with a square stride and symmetric padding, in `dtype` (gm_jax.models.precision)."""
  return precision.conv(x_BHWC, kernel_HWIO, (stride, stride), ((padding, padding),) * 2,
                        dimension_numbers=("NHWC", "HWIO", "NHWC"), dtype=dtype)


_PARITIES = ((0, 0), (0, 1), (1, 0), (1, 1))


def _parity_conv(x_BHWI, kernel_HWIO, taps, parity, dtype):
  """The stride-1 convolution that gives a stride-2 transposed convolution's outputs of one (row, column)
  parity: `taps[a]` is (the kernel taps that reach parity a, in the order of their input offsets, and
  the padding that aligns those offsets)."""
  (rows, row_pad), (cols, col_pad) = (taps[a] for a in parity)
  kernel = kernel_HWIO[jnp.array(rows)][:, jnp.array(cols)]
  return precision.conv(x_BHWI, kernel, (1, 1), (row_pad, col_pad),
                        dimension_numbers=("NHWC", "HWIO", "NHWC"), dtype=dtype)


def _parity_cells(x_BHWI, kernel_HWIO, taps, dtype):
  """The four parities' outputs, (B, H, W, 4 O) with channels ordered (row parity, column parity, O)."""
  return jnp.concatenate([_parity_conv(x_BHWI, kernel_HWIO, taps, p, dtype) for p in _PARITIES], axis=-1)


# With at most this many output channels (an image's), a stride-2 transposed convolution runs faster as
# XLA's input-dilated convolution than by parity. Batch 64, one thread: 32 x 32 x 64 to 1, 3, 4, 6
# channels, 5x5 kernel: 11, 24, 33, 73 ms against the parities' 29, 74, 63, 58; the 4x4 stride-2
# convolution's input gradient to 1, 3, 4, 6, 8 channels: 11, 11, 18, 21, 55 ms against 28, 30, 49, 47, 44.
_MAX_CHANNELS_FOR_DILATED_FORM = 4


def transposed_conv_by_parity(x_BHWI, kernel_HWIO, taps, dtype):
  """A stride-2 transposed convolution (B, H, W, I) -> (B, 2H, 2W, O) as four ordinary convolutions, one
  per output parity, interleaved by depth-to-space: every kernel tap is used once."""
  return depth_to_space(_parity_cells(x_BHWI, kernel_HWIO, taps, dtype))


# Below this many input channels the strided convolution's kernel gradient is taken as four matmuls
# (`_conv_4x4_stride2_kernel_gradient`): XLA:CPU's own, a convolution over the batch with the feature
# dimensions as its batch, is slow when they are few (batch 64, one thread: 3 -> 64 channels on 64 x 64,
# 32 against 105 ms; 64 -> 128 on 32 x 32, 128 against 166 ms; 128 -> 256 on 16 x 16, 102 against 101).
_MIN_CHANNELS_FOR_AUTOMATIC_KERNEL_GRADIENT = 128
# The taps of the 4x4 stride-2 convolution's input gradient by input parity (`_parity_conv`).
_STRIDED_4X4_INPUT_TAPS = {0: ([3, 1], (1, 0)), 1: ([2, 0], (0, 1))}


def _conv_4x4_stride2(x_BHWC, kernel_44IO, dtype):
  return _conv(x_BHWC, kernel_44IO, 2, 1, dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_4x4_stride2(x_BHWC: jax.Array, kernel_44IO: jax.Array, dtype: Any) -> jax.Array:
  """The discriminator's 4x4 stride-2 convolution with padding 1 (even sizes), with its input gradient
  as four ordinary convolutions (see `_conv_4x4_stride2_bwd`); the automatic one is an input-dilated
  convolution, which XLA:CPU runs on a generic kernel."""
  return _conv_4x4_stride2(x_BHWC, kernel_44IO, dtype)


def _conv_4x4_stride2_fwd(x_BHWC, kernel_44IO, dtype):
  return _conv_4x4_stride2(x_BHWC, kernel_44IO, dtype), (x_BHWC, kernel_44IO)


def _conv_4x4_stride2_bwd(dtype, residuals, grad_BHWO):
  """The input gradient is a 4x4 stride-2 transposed convolution, computed by parity: input row 2m
  receives output rows m (kernel row 1) and m - 1 (row 3), input row 2m + 1 output rows m (row 2) and
  m + 1 (row 0); so with the kernel's in and out swapped, parity 0 takes taps (3, 1) at offsets (-1, 0)
  and parity 1 taps (2, 0) at offsets (0, 1)."""
  x_BHWC, kernel_44IO = residuals
  c = kernel_44IO.shape[2]
  if c <= _MAX_CHANNELS_FOR_DILATED_FORM:
    _, input_vjp = jax.vjp(lambda x: _conv_4x4_stride2(x, kernel_44IO, dtype), x_BHWC)
    grad_x = input_vjp(grad_BHWO)[0]
  else:
    grad_x = transposed_conv_by_parity(grad_BHWO, jnp.swapaxes(kernel_44IO, 2, 3), _STRIDED_4X4_INPUT_TAPS,
                                       dtype)
  if c < _MIN_CHANNELS_FOR_AUTOMATIC_KERNEL_GRADIENT:
    grad_kernel = _conv_4x4_stride2_kernel_gradient(x_BHWC, grad_BHWO, dtype)
  else:
    _, kernel_vjp = jax.vjp(lambda k: _conv_4x4_stride2(x_BHWC, k, dtype), kernel_44IO)
    grad_kernel = kernel_vjp(grad_BHWO)[0]
  return grad_x.astype(x_BHWC.dtype), grad_kernel.astype(kernel_44IO.dtype)


def _conv_4x4_stride2_kernel_gradient(x_BHWI, grad_BHWO, dtype):
  """Kernel tap (2 dy + ry, 2 dx + rx) meets input pixel (2 p + 2 dy + ry, ...) of the padded input, so
  after space-to-depth of the padded input (channels (ry, rx, I)) the kernel gradient is four matmuls of
  its cells shifted by (dy, dx) against one transpose of the output gradient."""
  b, h, w, i = x_BHWI.shape
  ho, wo, o = h // 2, w // 2, grad_BHWO.shape[-1]
  cells = space_to_depth(jnp.pad(x_BHWI, ((0, 0), (1, 1), (1, 1), (0, 0))))
  grad_NO = grad_BHWO.reshape(b * ho * wo, o)
  shifts = [precision.plain_einsum("no,ni->oi", grad_NO,
                                   cells[:, dy:dy + ho, dx:dx + wo].reshape(b * ho * wo, 4 * i), dtype)
            for dy in (0, 1) for dx in (0, 1)]
  grad = jnp.stack(shifts).reshape(2, 2, o, 2, 2, i)  # (dy, dx, O, ry, rx, I)
  return jnp.transpose(grad, (0, 3, 1, 4, 5, 2)).reshape(4, 4, i, o)


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


# For output parity a in {0, 1} and input offset d in {-1, 0, 1}: which of the 5 kernel taps connects
# them (o = 2 i - 2 + k with o = 2 m + a, i = m + d), or None.
_TAP = {(0, -1): 4, (0, 0): 2, (0, 1): 0, (1, -1): None, (1, 0): 3, (1, 1): 1}
# Parity a's taps in the order of their input offsets, and the padding that aligns them (`_parity_conv`).
_TRANSPOSED_5X5_TAPS = {0: ([4, 2, 0], (1, 1)), 1: ([3, 1], (0, 1))}
# Every tap of the 5x5 kernel lands in exactly one of the 36 (dy, dx, row parity, column parity) slots of
# the sub-pixel form's 3x3 kernel (one 3x3 convolution to 4x the channels); the other 11 are zero.
# _SLOT_TAPS[s] is slot s's tap (row-major in 5 x 5) or None.
_SLOT_TAPS = [None if _TAP[(a, dy)] is None or _TAP[(b, dx)] is None else 5 * _TAP[(a, dy)] + _TAP[(b, dx)]
              for dy in (-1, 0, 1) for dx in (-1, 0, 1) for a in (0, 1) for b in (0, 1)]
_TAP_SLOTS = [_SLOT_TAPS.index(t) for t in range(25)]
# Below this many output channels the gradients take the sub-pixel form (`_conv_transpose_5x5_stride2_bwd`).
# Batch 64, one thread, 32 x 32 x 64 to 3 channels: input gradient 17 ms against the parities' 48, kernel
# gradient 96 against 222; 16 x 16 x 128 to 64 channels: 187 against 131 and 549 against 202.
_MIN_CHANNELS_FOR_PARITY_GRADIENTS = 16


def subpixel_kernel(kernel_55IO: jax.Array) -> jax.Array:
  """The 3x3 kernel, (3, 3, I, 4 * O) with outputs ordered (row parity, column parity, O), of the sub-pixel
  form: the one convolution whose output, after depth-to-space, is the transposed convolution."""
  i_ch, o_ch = kernel_55IO.shape[2:]
  taps = kernel_55IO.reshape(25, i_ch, o_ch)
  zeros = jnp.zeros((i_ch, o_ch), kernel_55IO.dtype)
  slots = jnp.stack([zeros if t is None else taps[t] for t in _SLOT_TAPS]).reshape(3, 3, 4, i_ch, o_ch)
  return jnp.transpose(slots, (0, 1, 3, 2, 4)).reshape(3, 3, i_ch, 4 * o_ch)


def subpixel_kernel_to_taps(kernel_33IP: jax.Array) -> jax.Array:
  """The inverse of `subpixel_kernel` on its non-zero slots: (3, 3, I, 4 * O) -> (5, 5, I, O)."""
  i_ch, o_ch = kernel_33IP.shape[2], kernel_33IP.shape[3] // 4
  slots = jnp.transpose(kernel_33IP.reshape(3, 3, i_ch, 4, o_ch), (0, 1, 3, 2, 4)).reshape(36, i_ch, o_ch)
  return jnp.stack([slots[s] for s in _TAP_SLOTS]).reshape(5, 5, i_ch, o_ch)


def _conv_transpose_5x5_stride2(x_BHWI, kernel_55IO, dtype):
  if kernel_55IO.shape[3] <= _MAX_CHANNELS_FOR_DILATED_FORM:
    return dilated_conv_transpose(x_BHWI, kernel_55IO, dtype)
  return transposed_conv_by_parity(x_BHWI, kernel_55IO, _TRANSPOSED_5X5_TAPS, dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_transpose_5x5_stride2(x_BHWI: jax.Array, kernel_55IO: jax.Array, dtype: Any) -> jax.Array:
  """PyTorch's ConvTranspose2d(kernel_size=5, stride=2, padding=2, output_padding=1) on NHWC, computed by
  output parity (the module docstring), with its backward pass in `_conv_transpose_5x5_stride2_bwd`."""
  return _conv_transpose_5x5_stride2(x_BHWI, kernel_55IO, dtype)


def _conv_transpose_5x5_stride2_fwd(x_BHWI, kernel_55IO, dtype):
  return _conv_transpose_5x5_stride2(x_BHWI, kernel_55IO, dtype), (x_BHWI, kernel_55IO)


def _conv_transpose_5x5_stride2_bwd(dtype, residuals, grad_BYXO):
  """By parity: the input gradient is the four parity convolutions' input gradients, summed, and each
  tap's kernel gradient one matmul of the input, shifted by the tap's offset, against the transposed
  gradient of its parity (XLA:CPU's own kernel gradient of a stride-1 convolution, a convolution with
  an image-sized window over transposed operands, was the slowest part of the DCGAN-64 generator's
  backward pass). With few output channels these products are too thin, and XLA's gradients of the
  sub-pixel form (one 3x3 convolution to 4x the channels) are faster."""
  x_BHWI, kernel_55IO = residuals
  grad_cells = space_to_depth(grad_BYXO)
  if kernel_55IO.shape[3] < _MIN_CHANNELS_FOR_PARITY_GRADIENTS:
    _, subpixel_vjp = jax.vjp(lambda x, k: _conv(x, k, 1, 1, dtype), x_BHWI, subpixel_kernel(kernel_55IO))
    grad_x, grad_kernel = subpixel_vjp(grad_cells)
    return grad_x, subpixel_kernel_to_taps(grad_kernel)
  _, input_vjp = jax.vjp(lambda x: _parity_cells(x, kernel_55IO, _TRANSPOSED_5X5_TAPS, dtype), x_BHWI)
  b, h, w, i = x_BHWI.shape
  o = kernel_55IO.shape[3]
  padded = jnp.pad(x_BHWI, ((0, 0), (1, 1), (1, 1), (0, 0)))  # every parity's padding is at most 1
  parity_grads = grad_cells.reshape(b * h * w, 4, o)
  # plain_einsum contracts over the pixels as one row-major matmul: in bfloat16 it materializes each
  # parity's transposed gradient once (XLA:CPU upcasts a bfloat16 dot with a transposed operand).
  tap_grads = {}
  for index, parity in enumerate(_PARITIES):
    grad_NO = parity_grads[:, index]
    (rows, (row_pad, _)), (cols, (col_pad, _)) = (_TRANSPOSED_5X5_TAPS[a] for a in parity)
    for dy, row in enumerate(rows):
      for dx, col in enumerate(cols):
        y, x = dy - row_pad + 1, dx - col_pad + 1
        shifted = padded[:, y:y + h, x:x + w].reshape(b * h * w, i)
        tap_grads[row, col] = precision.plain_einsum("no,ni->oi", grad_NO, shifted, dtype)
  grad_kernel = jnp.stack([tap_grads[row, col] for row in range(5) for col in range(5)]).reshape(5, 5, o, i)
  return input_vjp(grad_cells)[0], jnp.swapaxes(grad_kernel, 2, 3).astype(kernel_55IO.dtype)


conv_transpose_5x5_stride2.defvjp(_conv_transpose_5x5_stride2_fwd, _conv_transpose_5x5_stride2_bwd)


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
    y = conv_transpose_5x5_stride2(x_BHWC, kernel, self.dtype)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return y


def dilated_conv_transpose(x_BHWC: jax.Array, kernel_55IO: jax.Array,
                           dtype: Any = jnp.float32) -> jax.Array:
  """The same transposed convolution the textbook way: the flipped kernel over the input dilated by 2."""
  return precision.conv(x_BHWC, kernel_55IO[::-1, ::-1], (1, 1), ((2, 3), (2, 3)), lhs_dilation=(2, 2),
                        dimension_numbers=("NHWC", "HWIO", "NHWC"), dtype=dtype)


def normalized_discriminator_layers(image_size: int) -> int:
  """How many of the discriminator's layers for this image size take `norm` (none at 8 x 8: one stride-2
  layer, unnormalized as in the seed)."""
  return _num_upsamplings(image_size)[0] - 1


def _num_upsamplings(image_size: int) -> tuple[int, int]:
  """(number of stride-2 layers n >= 1, base size image_size / 2^n), base from 4 to 7 where n >= 1 allows
  (64 -> 4 layers, base 4; 28 -> 2 layers, base 7; 6 -> 1 layer, base 3)."""
  n = max(1, int(math.floor(math.log2(image_size / 4))))
  base = image_size // 2**n
  if base * 2**n != image_size:
    raise ValueError(f"DCGAN image size {image_size} must be a base of 3 to 7 times a power of two")
  return n, base


def _batch_norm(train: bool, name=None):
  # PyTorch's BatchNorm momentum 0.1 is flax's 0.9; eps 1e-5 as PyTorch.
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, scale_init=_bn_scale_init,
                      name=name)


def critic_layer_norm(name=None) -> nn.LayerNorm:
  """The WGAN-GP critic's normalization (Gulrajani et al. 2017, after Ba et al.): each example's
  statistics over its whole feature map (height, width and channels), with a scale and offset per channel.
  It mixes no examples, so the gradient penalty stays per example."""
  return nn.LayerNorm(epsilon=1e-5, reduction_axes=(-3, -2, -1), feature_axes=-1, name=name)


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
        h = critic_layer_norm()(h)
      elif self.norm != "none":
        raise ValueError(f"unknown discriminator norm {self.norm!r}; use batch, layer or none")
      h = nn.leaky_relu(h, 0.2)
    logit = precision.Conv(1, (base, base), padding="VALID", kernel_init=dcgan_init, dtype=dtype,
                           name=f"Conv_{n}")(h).reshape(x.shape[0])  # a linear function of phi(x) = h
    return logit + labels.projection(h.reshape(x.shape[0], -1), label_B, self.num_classes)
