"""The Inception v3 network of FID and Inception Score, as a Flax Linen module.

This is the TensorFlow graph `inception-2015-12-05` that the original FID and Inception Score code used,
in the layout of pytorch-fid's `fid_inception_v3`: torchvision's Inception v3 without the auxiliary head,
a 1008-way classifier, and four patched blocks. The 35x35 and 17x17 blocks (Mixed_5b-d, Mixed_6b-e) and
Mixed_7b average-pool without counting the zero padding (TensorFlow's pooling), and Mixed_7c max-pools
in its pool branch. Every convolution is conv (no bias) -> BatchNorm(eps=1e-3) with stored statistics
-> ReLU. Submodules carry pytorch-fid's names (`Mixed_5b/branch1x1/conv`, `.../bn`, `fc`), so a weight
file converts key by key (`gm_jax.evaluation.inception_weights`).

Input convention: images NHWC with float values in [0, 1] and 1 (grey) or 3 (RGB) channels, any size.
The module resizes them to 299x299 as PyTorch's `F.interpolate(mode='bilinear', align_corners=False)`
without antialiasing (what pytorch-fid does), scales to [-1, 1] and repeats a grey channel three times.
uint8 images must be divided by 255 first (integer inputs are rejected rather than silently misscaled).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

INCEPTION_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008
# TPUs run float32 convolutions as single bf16 passes by default (about 3 significant digits), which would
# shift the features and hence FID; convolutions and the classifier ask for full float32 precision.
DEFAULT_PRECISION = jax.lax.Precision.HIGHEST


def _bilinear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Source indices (i0, i1) and weight of i1 for each output position of PyTorch's align_corners=False
  bilinear resize: half-pixel centres, source positions below 0 clamped to 0, i1 clamped to the last row.

  Computed in float32 as PyTorch does for float32 images.
  """
  scale = np.float32(in_size) / np.float32(out_size)
  src = scale * (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)
  src = np.maximum(src, np.float32(0.0))
  i0 = np.minimum(np.floor(src).astype(np.int32), in_size - 1)
  i1 = np.minimum(i0 + 1, in_size - 1)
  return i0, i1, (src - i0).astype(np.float32)


def _lerp_axis(x: jax.Array, axis: int, out_size: int) -> jax.Array:
  """Bilinear resampling of one spatial axis to out_size (PyTorch's align_corners=False rule)."""
  if x.shape[axis] == out_size:
    return x  # PyTorch's rule is the identity at equal sizes
  i0, i1, lam = _bilinear_taps(x.shape[axis], out_size)
  shape = [1] * x.ndim
  shape[axis] = out_size
  lam = jnp.asarray(lam.reshape(shape), x.dtype)
  # Two gathers and a lerp rather than a matmul with the interpolation matrix: exact on every backend,
  # whatever its default matmul precision.
  return (1 - lam) * jnp.take(x, i0, axis=axis) + lam * jnp.take(x, i1, axis=axis)


def resize_bilinear(images_NHWC: jax.Array, height: int, width: int) -> jax.Array:
  """images_NHWC resized to (N, height, width, C) as PyTorch's F.interpolate(mode='bilinear',
  align_corners=False, antialias=False): each output pixel mixes the 2x2 source pixels around its
  half-pixel-centred source position, whether upsampling or downsampling."""
  return _lerp_axis(_lerp_axis(images_NHWC, 2, width), 1, height)


class BasicConv2d(nn.Module):
  """Conv (no bias) -> inference BatchNorm(eps=1e-3) -> ReLU, with PyTorch's explicit padding."""

  features: int
  kernel_size: tuple[int, int]
  strides: int = 1
  padding: tuple[int, int] = (0, 0)
  precision: Any = DEFAULT_PRECISION

  @nn.compact
  def __call__(self, x_NHWC: jax.Array) -> jax.Array:
    ph, pw = self.padding
    x = nn.Conv(self.features, self.kernel_size, strides=self.strides, padding=((ph, ph), (pw, pw)),
                use_bias=False, precision=self.precision, name="conv")(x_NHWC)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x)
    return nn.relu(x)


def _avg_pool_3x3_same(x_NHWC: jax.Array) -> jax.Array:
  """3x3 stride-1 average pool over the valid pixels only (TensorFlow's SAME pooling)."""
  return nn.avg_pool(x_NHWC, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_stride2(x_NHWC: jax.Array) -> jax.Array:
  return nn.max_pool(x_NHWC, (3, 3), strides=(2, 2), padding="VALID")


class InceptionA(nn.Module):
  """35x35 block (Mixed_5b-d): 1x1, 5x5, double 3x3 and pool branches; 224 + pool_features channels."""

  pool_features: int
  precision: Any = DEFAULT_PRECISION

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = lambda *a, **k: BasicConv2d(*a, precision=self.precision, **k)  # noqa: E731
    b1 = conv(64, (1, 1), name="branch1x1")(x)
    b5 = conv(48, (1, 1), name="branch5x5_1")(x)
    b5 = conv(64, (5, 5), padding=(2, 2), name="branch5x5_2")(b5)
    b3 = conv(64, (1, 1), name="branch3x3dbl_1")(x)
    b3 = conv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
    b3 = conv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
    bp = conv(self.pool_features, (1, 1), name="branch_pool")(_avg_pool_3x3_same(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """35x35 -> 17x17 reduction (Mixed_6a): stride-2 3x3, double 3x3 and max-pool branches."""

  precision: Any = DEFAULT_PRECISION

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = lambda *a, **k: BasicConv2d(*a, precision=self.precision, **k)  # noqa: E731
    b3 = conv(384, (3, 3), strides=2, name="branch3x3")(x)
    bd = conv(64, (1, 1), name="branch3x3dbl_1")(x)
    bd = conv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = conv(96, (3, 3), strides=2, name="branch3x3dbl_3")(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3_stride2(x)], axis=-1)


class InceptionC(nn.Module):
  """17x17 block (Mixed_6b-e) with factorized 7x7 convolutions of width channels_7x7; 768 channels."""

  channels_7x7: int
  precision: Any = DEFAULT_PRECISION

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = lambda *a, **k: BasicConv2d(*a, precision=self.precision, **k)  # noqa: E731
    c7 = self.channels_7x7
    b1 = conv(192, (1, 1), name="branch1x1")(x)
    b7 = conv(c7, (1, 1), name="branch7x7_1")(x)
    b7 = conv(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
    b7 = conv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
    bd = conv(c7, (1, 1), name="branch7x7dbl_1")(x)
    bd = conv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
    bd = conv(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
    bd = conv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
    bd = conv(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
    bp = conv(192, (1, 1), name="branch_pool")(_avg_pool_3x3_same(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """17x17 -> 8x8 reduction (Mixed_7a): 3x3, 7x7-then-3x3 (both stride 2) and max-pool branches."""

  precision: Any = DEFAULT_PRECISION

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = lambda *a, **k: BasicConv2d(*a, precision=self.precision, **k)  # noqa: E731
    b3 = conv(192, (1, 1), name="branch3x3_1")(x)
    b3 = conv(320, (3, 3), strides=2, name="branch3x3_2")(b3)
    b7 = conv(192, (1, 1), name="branch7x7x3_1")(x)
    b7 = conv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
    b7 = conv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
    b7 = conv(192, (3, 3), strides=2, name="branch7x7x3_4")(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3_stride2(x)], axis=-1)


class InceptionE(nn.Module):
  """8x8 block (Mixed_7b, Mixed_7c): split 1x3/3x1 branches; 2048 channels.

  pool='avg' (Mixed_7b) averages without padding; pool='max' (Mixed_7c) is the FID graph's max pool.
  """

  pool: str
  precision: Any = DEFAULT_PRECISION

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = lambda *a, **k: BasicConv2d(*a, precision=self.precision, **k)  # noqa: E731
    b1 = conv(320, (1, 1), name="branch1x1")(x)
    b3 = conv(384, (1, 1), name="branch3x3_1")(x)
    b3 = jnp.concatenate([conv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                          conv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)], axis=-1)
    bd = conv(448, (1, 1), name="branch3x3dbl_1")(x)
    bd = conv(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = jnp.concatenate([conv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                          conv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)], axis=-1)
    if self.pool == "avg":
      pooled = _avg_pool_3x3_same(x)
    elif self.pool == "max":
      pooled = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
    else:
      raise ValueError(f"InceptionE pool must be 'avg' or 'max', got {self.pool!r}")
    bp = conv(192, (1, 1), name="branch_pool")(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3FID(nn.Module):
  """FID Inception v3: images NHWC in [0, 1] (1 or 3 channels, any size) -> pool3 features (N, 2048).

  `__call__(images, with_logits=True)` also returns the 1008-way logits (the Inception Score
  classifier). Batch norm always uses the stored statistics; variables are {'params', 'batch_stats'},
  and `init` creates the classifier too, so initialized variables have the published file's layout.
  `precision` is passed to every convolution and to the classifier.
  """

  precision: Any = DEFAULT_PRECISION

  def preprocess(self, images_NHWC: jax.Array) -> jax.Array:
    """The network input (N, 299, 299, 3) in [-1, 1]: bilinear resize, 2x - 1, grey repeated to RGB."""
    if images_NHWC.ndim != 4 or images_NHWC.shape[-1] not in (1, 3):
      raise ValueError(f"expected images (N, H, W, 1 or 3), got shape {images_NHWC.shape}")
    if not jnp.issubdtype(images_NHWC.dtype, jnp.floating):
      raise TypeError(f"expected float images in [0, 1], got {images_NHWC.dtype} (divide uint8 by 255)")
    x = resize_bilinear(images_NHWC.astype(jnp.float32), INCEPTION_SIZE, INCEPTION_SIZE)
    x = 2 * x - 1
    if x.shape[-1] == 1:
      x = jnp.repeat(x, 3, axis=-1)
    return x

  @nn.compact
  def __call__(self, images_NHWC: jax.Array, with_logits: bool = False):
    """pool3 features (N, 2048), or (features, logits (N, 1008)) when with_logits."""
    conv = lambda *a, **k: BasicConv2d(*a, precision=self.precision, **k)  # noqa: E731
    x = self.preprocess(images_NHWC)
    x = conv(32, (3, 3), strides=2, name="Conv2d_1a_3x3")(x)  # 149x149
    x = conv(32, (3, 3), name="Conv2d_2a_3x3")(x)  # 147x147
    x = conv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
    x = _max_pool_3x3_stride2(x)  # 73x73
    x = conv(80, (1, 1), name="Conv2d_3b_1x1")(x)
    x = conv(192, (3, 3), name="Conv2d_4a_3x3")(x)  # 71x71
    x = _max_pool_3x3_stride2(x)  # 35x35
    x = InceptionA(32, self.precision, name="Mixed_5b")(x)  # 256 channels
    x = InceptionA(64, self.precision, name="Mixed_5c")(x)  # 288
    x = InceptionA(64, self.precision, name="Mixed_5d")(x)  # 288
    x = InceptionB(self.precision, name="Mixed_6a")(x)  # 17x17x768
    x = InceptionC(128, self.precision, name="Mixed_6b")(x)
    x = InceptionC(160, self.precision, name="Mixed_6c")(x)
    x = InceptionC(160, self.precision, name="Mixed_6d")(x)
    x = InceptionC(192, self.precision, name="Mixed_6e")(x)
    x = InceptionD(self.precision, name="Mixed_7a")(x)  # 8x8x1280
    x = InceptionE("avg", self.precision, name="Mixed_7b")(x)  # 8x8x2048
    x = InceptionE("max", self.precision, name="Mixed_7c")(x)
    features = jnp.mean(x, axis=(1, 2))
    if not (with_logits or self.is_initializing()):
      return features
    logits = nn.Dense(NUM_CLASSES, precision=self.precision, name="fc")(features)
    return (features, logits) if with_logits else features
