"""PixelRNN (van den Oord et al. 2016, "Pixel Recurrent Neural Networks"): Row LSTM and Diagonal BiLSTM.

The same distribution as PixelCNN (gm_jax.models.pixelcnn): p(x) = prod over sub-pixels in raster order
(rows, columns, then channels R, G, B) of a categorical over the levels, with the same output head and
sampler. The network:
- a 7x7 mask-A convolution (rows above, columns left of the current pixel, and its earlier channels);
- LSTM layers with residual connections: x <- x + (1x1 mask-B conv of the layer's hidden state);
- ReLU, 1x1 mask-B convolution, ReLU, 1x1 mask-B convolution to C x levels logits.
Features are split into one group per image channel (as in PixelCNN): mask A lets group g see input
groups < g at the current pixel, mask B groups <= g; earlier pixels are seen in full.

Row LSTM: rows are processed top to bottom, a whole row at once. The input-to-state map is a 1 x k
mask-B convolution over columns <= j of row i; the state-to-state map a 1 x k convolution over row
i - 1's hidden states. The receptive field is a triangle above the pixel.
Diagonal BiLSTM: the map is skewed (row i shifted right by i) so that each diagonal becomes a column;
columns are processed left to right with a 1x1 mask-B input-to-state map and a 2 x 1 state-to-state
convolution over the previous column, so pixel (i, j) sees (i, j - 1) and (i - 1, j). A second LSTM
runs right to left on the mirrored image; its output is shifted down one row before it is added, so
pixel (i, j) receives the right-to-left state of (i - 1, j). Together they see every earlier sub-pixel
but one: the last channel of pixel (i - 1, W - 1), which enters no feature of its own row, is missed by
the pixels (i, j) beyond the first convolution's reach (j + first_kernel // 2 < W - 1).

LSTM step (gates from input-to-state s_i plus state-to-state s_s):
  [o, f, i, g] = [sigmoid, sigmoid, sigmoid, tanh](s_i + s_s),  c = f * c_prev + i * g,  h = o * tanh(c)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gm_jax.models import labels, precision
from gm_jax.models.pixelcnn import MaskedConv, PixelCNN, centre_mask, channel_groups, horizontal_conv


@dataclasses.dataclass(frozen=True)
class PixelRNNConfig:
  shape: tuple[int, int, int]  # H, W, C
  num_levels: int
  architecture: str = "diagonal_bilstm"  # row_lstm | diagonal_bilstm
  features: int = 32  # residual stream (h in the paper's 2h); a multiple of C
  hidden: int = 32  # LSTM state size; a multiple of C
  num_layers: int = 2  # LSTM layers
  first_kernel: int = 7
  row_kernel: int = 3  # Row LSTM: width of the input-to-state and state-to-state convolutions
  head_features: int = 64  # a multiple of C
  dropout: float = 0.0  # on each LSTM layer's output, before its residual projection
  # Of the convolutions and the state-to-state matmuls; LSTM cells, gates and logits stay float32.
  compute_dtype: str = "float32"


def raster_mask(kernel: int, in_groups: np.ndarray, out_groups: np.ndarray, mask_type: str) -> np.ndarray:
  """(k, k, in, out) mask of a k x k convolution: rows above, row i columns < j, and the centre tap
  restricted by the channel groups (mask A: earlier channels; B: also the same)."""
  c = kernel // 2
  mask = np.zeros((kernel, kernel, in_groups.size, out_groups.size), np.float32)
  mask[:c] = 1.0
  mask[c, :c] = 1.0
  mask[c, c] = centre_mask(in_groups, out_groups, mask_type)
  return mask


def skew(x_BHWC: jax.Array) -> jax.Array:
  """(B, H, W, C) -> (B, H, W + H - 1, C): row i shifted right by i, zeros elsewhere, so that the
  diagonal i + j = const becomes column i + j."""
  _, h, w, _ = x_BHWC.shape
  source = jnp.arange(w + h - 1)[None, :] - jnp.arange(h)[:, None]  # (H, S): column j of skewed (i, s)
  valid = (source >= 0) & (source < w)
  gathered = jnp.take_along_axis(x_BHWC, jnp.clip(source, 0, w - 1)[None, :, :, None], axis=2)
  return jnp.where(valid[None, :, :, None], gathered, 0.0)


def unskew(x_BHSC: jax.Array, width: int) -> jax.Array:
  """Inverse of `skew`: row i's columns i .. i + W - 1."""
  h = x_BHSC.shape[1]
  rows = jnp.arange(h)[:, None] + jnp.arange(width)[None, :]  # (H, W) skewed column of (i, j)
  return jnp.take_along_axis(x_BHSC, rows[None, :, :, None], axis=2)


def _lstm_update(gates, c_prev):
  o, f, i, g = jnp.split(gates, 4, axis=-1)
  c = jax.nn.sigmoid(f) * c_prev + jax.nn.sigmoid(i) * jnp.tanh(g)
  return jax.nn.sigmoid(o) * jnp.tanh(c), c


def _gate_groups(hidden: int, num_channels: int) -> np.ndarray:
  """Channel group of each of the 4 * hidden gate pre-activations (each gate grouped like the state)."""
  return np.tile(channel_groups(hidden, num_channels), 4)


class RowLSTM(nn.Module):
  """(B, H, W, F) -> hidden states (B, H, W, hidden); row i depends on rows < i and row i columns <= j."""

  hidden: int
  kernel: int
  num_channels: int
  dtype: Any = jnp.float32  # compute dtype (gm_jax.models.precision)

  @nn.compact
  def __call__(self, x_BHWF):
    b, h, w, _ = x_BHWF.shape
    groups = channel_groups(x_BHWF.shape[-1], self.num_channels)
    gate_groups = _gate_groups(self.hidden, self.num_channels)
    to_state = horizontal_conv(4 * self.hidden, self.kernel, groups, gate_groups, "B", self.dtype)(x_BHWF)
    kernel = self.param("state_kernel", nn.initializers.lecun_normal(),
                        (self.kernel, self.hidden, 4 * self.hidden))
    pad = self.kernel // 2

    def step(carry, s_in):  # one row: s_in (B, W, 4 hidden)
      h_prev, c_prev = carry
      s_state = precision.conv(h_prev, kernel, (1,), ((pad, pad),), dimension_numbers=("NWC", "WIO", "NWC"),
                               dtype=self.dtype)
      h_new, c_new = _lstm_update(s_in + s_state, c_prev)
      return (h_new, c_new), h_new

    zeros = jnp.zeros((b, w, self.hidden), x_BHWF.dtype)
    _, hs = jax.lax.scan(step, (zeros, zeros), jnp.swapaxes(to_state, 0, 1))
    return jnp.swapaxes(hs, 0, 1)


class DiagonalLSTM(nn.Module):
  """One direction of the Diagonal BiLSTM: (B, H, W, F) -> (B, H, W, hidden), where (i, j) depends on
  the pixels (i', j') with i' <= i and j' <= j (its own through mask B only)."""

  hidden: int
  num_channels: int
  dtype: Any = jnp.float32  # compute dtype (gm_jax.models.precision)

  @nn.compact
  def __call__(self, x_BHWF):
    b, h, w, _ = x_BHWF.shape
    groups = channel_groups(x_BHWF.shape[-1], self.num_channels)
    mask = centre_mask(groups, _gate_groups(self.hidden, self.num_channels), "B")[None, None]
    to_state = MaskedConv(4 * self.hidden, mask, ((0, 0), (0, 0)), self.dtype)(x_BHWF)
    to_state = skew(to_state)  # (B, H, S, 4 hidden)
    # 2 x 1 state-to-state convolution over the previous column: taps at rows i - 1 and i.
    kernel = self.param("state_kernel", nn.initializers.lecun_normal(), (2, self.hidden, 4 * self.hidden))

    def step(carry, s_in):  # one skewed column: s_in (B, H, 4 hidden)
      h_prev, c_prev = carry
      above = jnp.pad(h_prev, ((0, 0), (1, 0), (0, 0)))[:, :-1]
      s_state = (precision.matmul(above, kernel[0], self.dtype)
                 + precision.matmul(h_prev, kernel[1], self.dtype))
      h_new, c_new = _lstm_update(s_in + s_state, c_prev)
      return (h_new, c_new), h_new

    zeros = jnp.zeros((b, h, self.hidden), x_BHWF.dtype)
    _, hs = jax.lax.scan(step, (zeros, zeros), jnp.moveaxis(to_state, 2, 0))  # over the H + W - 1 columns
    return unskew(jnp.moveaxis(hs, 0, 2), w)


class DiagonalBiLSTM(nn.Module):
  hidden: int
  num_channels: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x_BHWF):
    left = DiagonalLSTM(self.hidden, self.num_channels, self.dtype, name="left_to_right")(x_BHWF)
    right = DiagonalLSTM(self.hidden, self.num_channels, self.dtype,
                         name="right_to_left")(x_BHWF[:, :, ::-1])[:, :, ::-1]
    # Row i's right-to-left state has seen row i's later pixels: pixel (i, j) takes the one of (i - 1, j).
    right = jnp.pad(right, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]
    return left + right


class PixelRNN(nn.Module):
  """Maps integer images (B, H, W, C) in [0, num_levels) to logits (B, H, W, C, num_levels)."""

  config: PixelRNNConfig

  scaled_input = PixelCNN.scaled_input
  __call__ = PixelCNN.__call__
  sample = PixelCNN.sample  # raster-order ancestral sampling, one network evaluation per sub-pixel

  @nn.compact
  def logits_from_scaled(self, x, train: bool = False, label_B=None):
    """The network on inputs already in [-1, 1]; continuous, so its Jacobian shows the dependencies.
    Unconditional: `label_B` must be None."""
    labels.check(label_B, 0)
    cfg = self.config
    dtype = precision.compute_dtype(cfg.compute_dtype)
    c, levels = cfg.shape[-1], cfg.num_levels
    groups = channel_groups(cfg.features, c)
    hidden_groups = channel_groups(cfg.hidden, c)
    k = cfg.first_kernel
    h = MaskedConv(cfg.features, raster_mask(k, np.arange(c), groups, "A"), ((k // 2, k // 2),) * 2, dtype,
                   name="input_conv")(x)
    no_pad = ((0, 0), (0, 0))
    for layer in range(cfg.num_layers):
      if cfg.architecture == "row_lstm":
        states = RowLSTM(cfg.hidden, cfg.row_kernel, c, dtype, name=f"row_lstm_{layer}")(h)
      elif cfg.architecture == "diagonal_bilstm":
        states = DiagonalBiLSTM(cfg.hidden, c, dtype, name=f"diagonal_bilstm_{layer}")(h)
      else:
        raise ValueError(f"unknown PixelRNN architecture {cfg.architecture!r}; "
                         f"use row_lstm or diagonal_bilstm")
      states = nn.Dropout(cfg.dropout, deterministic=not train)(states)
      h = h + MaskedConv(cfg.features, centre_mask(hidden_groups, groups, "B")[None, None], no_pad, dtype,
                         name=f"residual_{layer}")(states)
    head_groups = channel_groups(cfg.head_features, c)
    out_groups = np.repeat(np.arange(c), levels)  # logits laid out (C, levels)
    y = MaskedConv(cfg.head_features, centre_mask(groups, head_groups, "B")[None, None], no_pad, dtype,
                   name="head_hidden")(nn.relu(h))
    y = MaskedConv(c * levels, centre_mask(head_groups, out_groups, "B")[None, None], no_pad, dtype,
                   name="head_logits")(nn.relu(y))
    return y.reshape(*y.shape[:-1], c, levels)
