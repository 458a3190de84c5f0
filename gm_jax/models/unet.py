"""The DDPM U-Net (Ho et al. 2020): residual blocks with GroupNorm, SiLU, dropout and a projected
time embedding, self-attention at chosen resolutions, channel multipliers per resolution, skip
connections from every down-path block to the up path; nearest-neighbour upsampling + 3x3 conv and
strided 3x3 conv downsampling. (B, H, W, C) images and (B,) times -> (B, H, W, C) predictions; with
num_classes > 0, (B,) labels too, embedded and added to the time embedding (as in Ho & Salimans 2021).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gm_jax.models import labels, precision
from gm_jax.models.time_embedding import sinusoidal_embedding


@dataclasses.dataclass(frozen=True)
class UNetConfig:
  channels: int = 128
  channel_mults: tuple[int, ...] = (1, 2, 2, 2)
  num_res_blocks: int = 2
  attention_resolutions: tuple[int, ...] = (16,)
  dropout: float = 0.1
  num_groups: int = 32
  compute_dtype: str = "float32"  # of convolutions and matmuls (gm_jax.models.precision)
  num_classes: int = 0  # > 0: conditioned on a label in [0, num_classes], num_classes being "no label"
  # Each run of consecutive blocks of the same shapes as one nn.scan over stacked parameters, so XLA
  # compiles the block once (vdm_cifar10's 65 blocks: ~45 s of compilation). The parameters' layout
  # differs from the unscanned network's (stacked per run), so checkpoints do not carry across.
  scan_blocks: bool = False


def num_norm_groups(channels: int, num_groups: int) -> int:
  """The largest divisor of `channels` that is at most num_groups."""
  groups = min(num_groups, channels)
  while channels % groups:
    groups -= 1
  return groups


def group_norm(channels: int, num_groups: int) -> nn.GroupNorm:
  return nn.GroupNorm(num_groups=num_norm_groups(channels, num_groups))


class ResBlock(nn.Module):
  out_channels: int
  dropout: float
  num_groups: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, temb, train: bool):
    # The time (and label) embedding is a per-channel shift followed by GroupNorm: with one channel per
    # group the normalization subtracts it again and the block ignores the time.
    groups = num_norm_groups(self.out_channels, self.num_groups)
    if self.out_channels // groups < 2:
      raise ValueError(f"GroupNorm with {groups} groups on {self.out_channels} channels "
                       f"(one channel per group) removes the time embedding; "
                       f"set model.num_groups to at most {self.out_channels // 2}")
    conv = functools.partial(precision.Conv, dtype=self.dtype)
    h = nn.silu(group_norm(x.shape[-1], self.num_groups)(x))
    h = conv(self.out_channels, (3, 3))(h)
    h = h + precision.Dense(self.out_channels, dtype=self.dtype)(nn.silu(temb))[:, None, None, :]
    h = nn.silu(group_norm(self.out_channels, self.num_groups)(h))
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    h = conv(self.out_channels, (3, 3), kernel_init=nn.initializers.zeros)(h)
    if x.shape[-1] != self.out_channels:
      x = conv(self.out_channels, (1, 1), name="skip")(x)
    return x + h


class AttentionBlock(nn.Module):
  num_groups: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, h, w, c = x.shape
    y = group_norm(c, self.num_groups)(x).reshape(b, h * w, c)
    q, k, v = jnp.split(precision.Dense(3 * c, dtype=self.dtype)(y), 3, axis=-1)
    scores = precision.einsum("bqc,bkc->bqk", q, k, self.dtype) / jnp.sqrt(c).astype(jnp.float32)
    out = precision.einsum("bqk,bkc->bqc", jax.nn.softmax(scores, axis=-1), v, self.dtype)
    out = precision.Dense(c, dtype=self.dtype, kernel_init=nn.initializers.zeros)(out)
    return x + out.reshape(b, h, w, c)


def _block(cfg: UNetConfig, h, skip, temb, out_channels: int, attention: bool, train: bool):
  """One block of a U-Net path: the skip concatenated first (up path), then a ResBlock, then attention
  where the resolution has it. Its modules belong to the calling module's compact scope."""
  dtype = precision.compute_dtype(cfg.compute_dtype)
  if skip is not None:
    h = jnp.concatenate([h, skip], axis=-1)
  h = ResBlock(out_channels, cfg.dropout, cfg.num_groups, dtype)(h, temb, train)
  if attention:
    h = AttentionBlock(cfg.num_groups, dtype)(h)
  return h


class UNetStep(nn.Module):
  """A block as the body of an nn.scan over a run of blocks: returns (h, h), the carry and the output."""

  out_channels: int
  attention: bool
  config: UNetConfig
  train: bool

  @nn.compact
  def __call__(self, h, skip, temb):
    h = _block(self.config, h, skip, temb, self.out_channels, self.attention, self.train)
    return h, h


def _run_steps(cfg: UNetConfig, h, skips, temb, out_channels: int, count: int, train: bool, outputs: list):
  """`count` steps of a path from h, each taking the last of `skips` (up path) or none (skips None);
  appends each step's output to `outputs`. Called from UNet's compact __call__, whose scope holds the
  blocks. With cfg.scan_blocks, each run of steps whose inputs have the same shapes is one nn.scan."""
  attention = h.shape[1] in cfg.attention_resolutions
  while count:
    run_skips = None if skips is None else [skips.pop()]
    run = 1
    # Every step after the first sees the first one's output shape, so a run starts where h has it.
    if cfg.scan_blocks and h.shape[-1] == out_channels:
      while run < count and (skips is None or skips[-1].shape == run_skips[0].shape):
        run += 1
        if skips is not None:
          run_skips.append(skips.pop())
    if run == 1:  # in UNet's own scope, named as the unscanned network names its blocks
      h = _block(cfg, h, run_skips and run_skips[0], temb, out_channels, attention, train)
      outputs.append(h)
    else:
      scan = nn.scan(UNetStep, variable_axes={"params": 0}, split_rngs={"params": True, "dropout": True},
                     in_axes=(nn.broadcast if skips is None else 0, nn.broadcast), length=run)
      h, hs = scan(out_channels, attention, cfg, train)(h, None if skips is None else jnp.stack(run_skips),
                                                         temb)
      outputs.extend(hs[i] for i in range(run))
    count -= run
  return h


class UNet(nn.Module):
  config: UNetConfig

  @nn.compact
  def __call__(self, x_BHWC, t_B, train: bool = False, label_B=None):
    cfg = self.config
    ch, groups = cfg.channels, cfg.num_groups
    dtype = precision.compute_dtype(cfg.compute_dtype)
    conv = functools.partial(precision.Conv, dtype=dtype)
    dense = functools.partial(precision.Dense, dtype=dtype)
    temb = sinusoidal_embedding(t_B, ch)
    temb = dense(4 * ch)(nn.silu(dense(4 * ch)(temb))) + labels.embedding(cfg.num_classes, 4 * ch, label_B)
    h = conv(ch, (3, 3))(x_BHWC)
    skips = [h]
    for level, mult in enumerate(cfg.channel_mults):
      h = _run_steps(cfg, h, None, temb, ch * mult, cfg.num_res_blocks, train, skips)
      if level != len(cfg.channel_mults) - 1:
        h = conv(h.shape[-1], (3, 3), strides=(2, 2))(h)
        skips.append(h)
    h = ResBlock(h.shape[-1], cfg.dropout, groups, dtype)(h, temb, train)
    h = AttentionBlock(groups, dtype)(h)
    h = ResBlock(h.shape[-1], cfg.dropout, groups, dtype)(h, temb, train)
    for level, mult in reversed(list(enumerate(cfg.channel_mults))):
      h = _run_steps(cfg, h, skips, temb, ch * mult, cfg.num_res_blocks + 1, train, [])
      if level != 0:
        b, height, width, c = h.shape
        h = jax.image.resize(h, (b, 2 * height, 2 * width, c), method="nearest")
        h = conv(c, (3, 3))(h)
    h = nn.silu(group_norm(h.shape[-1], groups)(h))
    return conv(x_BHWC.shape[-1], (3, 3), kernel_init=nn.initializers.zeros)(h)
