"""Gated PixelCNN (van den Oord et al. 2016): p(x) = prod over sub-pixels in raster order of a categorical.

Order: rows top to bottom, columns left to right, and within a pixel the channels in order (R, G, B),
so the logits for sub-pixel (i, j, c) may depend only on rows < i, on row i columns < j, and on pixel
(i, j)'s channels < c.
- Vertical stack: convolutions over a (k//2 + 1) x k window of the rows at and above i. It reaches
  the horizontal stack only after a one-row shift down, so the horizontal stack sees rows < i from it.
- Horizontal stack: 1 x (k//2 + 1) convolutions over columns <= j of row i. At the centre tap (pixel j
  itself) features are split into one group per image channel: mask A (first layer) lets group g see
  input groups < g, mask B (later layers, 1x1 convolutions) groups <= g. With one channel, mask A
  removes the centre tap entirely.
- Gated activation tanh(a) * sigmoid(b); residual connections in the horizontal stack.
- Class-conditional (num_classes > 0, the paper's conditional PixelCNN): a learned projection of the
  label's one-hot vector is added to both stacks' gate pre-activations in every block, the same at every
  position, so p(x | label) keeps the raster order's factorization.
Together the stacks see every earlier sub-pixel (no blind spot), which the tests check.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gm_jax.models import labels, precision


@dataclasses.dataclass(frozen=True)
class PixelCNNConfig:
  shape: tuple[int, int, int]  # H, W, C
  num_levels: int
  features: int = 64  # per stack; a multiple of C
  num_layers: int = 5  # gated blocks, the first with mask A
  first_kernel: int = 7
  kernel: int = 3
  head_features: int = 256  # a multiple of C
  dropout: float = 0.0  # on the gated horizontal features, before their 1x1 convolution
  compute_dtype: str = "float32"  # of the convolutions (gm_jax.models.precision); logits stay float32
  num_classes: int = 0  # > 0: conditional on a label in [0, num_classes)


def channel_groups(num_features: int, num_channels: int) -> np.ndarray:
  """Which image channel each feature belongs to (contiguous, equal blocks)."""
  if num_features % num_channels:
    raise ValueError(f"PixelCNN feature counts must be multiples of the {num_channels} image channels; "
                     f"got {num_features}")
  return np.arange(num_features) * num_channels // num_features


def centre_mask(in_groups: np.ndarray, out_groups: np.ndarray, mask_type: str) -> np.ndarray:
  """(in, out) connections allowed at the current pixel: A strictly earlier channels, B also the same."""
  if mask_type == "A":
    return in_groups[:, None] < out_groups[None, :]
  if mask_type == "B":
    return in_groups[:, None] <= out_groups[None, :]
  raise ValueError(f"unknown PixelCNN mask type {mask_type!r}; use 'A' or 'B'")


class MaskedConv(nn.Module):
  """A convolution whose kernel is multiplied by a fixed 0/1 mask, with explicit (causal) padding."""

  features: int
  mask: np.ndarray  # (kh, kw, in, features)
  padding: tuple[tuple[int, int], tuple[int, int]]
  dtype: Any = jnp.float32  # compute dtype (gm_jax.models.precision); the result is float32

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", nn.initializers.lecun_normal(), self.mask.shape, jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
    y = precision.conv(x, kernel * jnp.asarray(self.mask, kernel.dtype), (1, 1), self.padding,
                       dimension_numbers=("NHWC", "HWIO", "NHWC"), dtype=self.dtype)
    return y + bias


def horizontal_mask(kernel: int, in_groups: np.ndarray, out_groups: np.ndarray, mask_type: str) -> np.ndarray:
  """1 x (kernel//2 + 1) taps over columns j - kernel//2 .. j; the last tap is the current pixel."""
  width = kernel // 2 + 1
  mask = np.ones((1, width, in_groups.size, out_groups.size), np.float32)
  mask[0, -1] = centre_mask(in_groups, out_groups, mask_type)
  return mask


def horizontal_conv(features_out: int, kernel: int, in_groups, out_groups, mask_type: str,
                    dtype: Any = jnp.float32) -> MaskedConv:
  return MaskedConv(features_out, horizontal_mask(kernel, in_groups, out_groups, mask_type),
                    ((0, 0), (kernel // 2, 0)), dtype)


def vertical_conv(features_out: int, kernel: int, num_in: int, dtype: Any = jnp.float32) -> MaskedConv:
  """Rows i - kernel//2 .. i, all kernel columns centred on j (no mask needed: used after a shift)."""
  mask = np.ones((kernel // 2 + 1, kernel, num_in, features_out), np.float32)
  return MaskedConv(features_out, mask, ((kernel // 2, 0), (kernel // 2, kernel // 2)), dtype)


def shift_down(x_BHWC: jax.Array) -> jax.Array:
  """Row i receives row i - 1 (row 0 receives zeros)."""
  return jnp.pad(x_BHWC, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]


def gate(x: jax.Array) -> jax.Array:
  a, b = jnp.split(x, 2, axis=-1)
  return jnp.tanh(a) * jax.nn.sigmoid(b)


class GatedBlock(nn.Module):
  features: int
  kernel: int
  num_channels: int
  first: bool
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, v, h, train: bool = False, label_BK=None):
    f, c = self.features, self.num_channels
    groups = channel_groups(f, c)
    doubled = np.concatenate([groups, groups])  # the gate pairs feature i with feature f + i
    in_groups = np.arange(c) if self.first else groups
    v_pre = vertical_conv(2 * f, self.kernel, v.shape[-1], self.dtype)(v)
    h_pre = horizontal_conv(2 * f, self.kernel, in_groups, doubled, "A" if self.first else "B", self.dtype)(h)
    if label_BK is not None:  # the label's bias on both gates, the same at every position; a lookup by
      # a one-hot product, in float32 whatever the compute dtype (bfloat16 would round the table's rows)
      label = lambda name: precision.Dense(2 * f, name=name)(label_BK)[:, None, None]
      with jax.named_scope(precision.ONE_HOT_LOOKUP):
        v_pre = v_pre + label("label_to_vertical")
        h_pre = h_pre + label("label_to_horizontal")
    h_pre = h_pre + precision.Conv(2 * f, (1, 1), dtype=self.dtype,
                                   name="vertical_to_horizontal")(shift_down(v_pre))
    h_gated = nn.Dropout(self.dropout, deterministic=not train)(gate(h_pre))
    h_out = MaskedConv(f, centre_mask(groups, groups, "B")[None, None], ((0, 0), (0, 0)), self.dtype)(h_gated)
    if not self.first:
      h_out = h_out + h
    return gate(v_pre), h_out


class PixelCNN(nn.Module):
  """Maps integer images (B, H, W, C) in [0, num_levels) to logits (B, H, W, C, num_levels)."""

  config: PixelCNNConfig

  def scaled_input(self, x_BHWC):
    return x_BHWC.astype(jnp.float32) * (2.0 / (self.config.num_levels - 1)) - 1.0

  def __call__(self, x_BHWC, train: bool = False, label_B=None):
    return self.logits_from_scaled(self.scaled_input(x_BHWC), train, label_B)

  @nn.compact
  def logits_from_scaled(self, x, train: bool = False, label_B=None):
    """The network on inputs already in [-1, 1]; continuous, so its Jacobian shows the dependencies."""
    cfg = self.config
    label_BK = labels.one_hot(label_B, cfg.num_classes)
    c, levels = cfg.shape[-1], cfg.num_levels
    dtype = precision.compute_dtype(cfg.compute_dtype)
    v = h = x
    for i in range(cfg.num_layers):
      kernel = cfg.first_kernel if i == 0 else cfg.kernel
      v, h = GatedBlock(cfg.features, kernel, c, first=i == 0, dropout=cfg.dropout, dtype=dtype,
                        name=f"block_{i}")(v, h, train, label_BK)
    groups = channel_groups(cfg.features, c)
    head_groups = channel_groups(cfg.head_features, c)
    out_groups = np.repeat(np.arange(c), levels)  # logits laid out (C, levels)
    no_pad = ((0, 0), (0, 0))
    y = MaskedConv(cfg.head_features, centre_mask(groups, head_groups, "B")[None, None], no_pad,
                   dtype=dtype, name="head_hidden")(nn.relu(h))
    y = MaskedConv(c * levels, centre_mask(head_groups, out_groups, "B")[None, None], no_pad,
                   dtype=dtype, name="head_logits")(nn.relu(y))
    return y.reshape(*y.shape[:-1], c, levels)

  def sample(self, key: jax.Array, num: int, temperature: float = 1.0, label_B=None) -> jax.Array:
    """Raster-order ancestral sampling (given (num,) labels if conditional): one network evaluation per
    sub-pixel."""
    h, w, c = self.config.shape
    x = jnp.zeros((num, h, w, c), jnp.int32)

    def body(position, x):
      i, rest = jnp.divmod(position, w * c)
      j, ch = jnp.divmod(rest, c)
      logits = self(x, label_B=label_B)[:, i, j, ch] / temperature
      value = jax.random.categorical(jax.random.fold_in(key, position), logits)
      return x.at[:, i, j, ch].set(value.astype(jnp.int32))

    return jax.lax.fori_loop(0, h * w * c, body, x)
