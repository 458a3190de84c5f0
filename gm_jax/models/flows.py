"""Normalizing flows: a bijector f (gm_jax.models.bijectors) and a base density p_z.

  log p(x) = log p_z(f(x)) + log |det df/dx|                     (change of variables)

Architectures built from config (`FlowConfig`):
  nice      additive couplings alternating their mask, then NICE's learned diagonal scaling (images) or
            an ActNorm, that scaling with a bias and a data-dependent start (vectors)
  realnvp   affine couplings with alternating checkerboard masks (vectors: even and odd entries); images
            use RealNVP's multi-scale scheme: per level, checkerboard couplings, squeeze, channel
            couplings, factor out half, recurse; last level: checkerboard couplings only
  glow      per level: squeeze, then K steps of ActNorm -> invertible 1x1 conv (LU) -> affine channel
            coupling, factor out half (vectors: the same steps without squeezing)
  nsf, maf, iaf  spline couplings and autoregressive flows (gm_jax.models.flow_architectures)
Images are first mapped from [0, 1) by the preprocessing bijector (logit for RealNVP/NICE, x - 0.5 for
Glow), so its Jacobian is part of log p.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gm_jax.data import transforms
from gm_jax.models import bijectors as bj
from gm_jax.models import flow_architectures, precision

_LOG_2PI = math.log(2 * math.pi)


@dataclasses.dataclass(frozen=True)
class FlowConfig:
  architecture: str  # nice | realnvp | glow
  x_shape: tuple[int, ...]
  hidden: tuple[int, ...] = (128, 128)  # conditioner: MLP sizes, or (features, then one entry per block)
  num_levels: int = 1  # multi-scale levels (images)
  steps_per_level: int = 4  # couplings (or Glow steps) per level
  base: str = "standard"  # standard | learned (diagonal Gaussian)
  preprocess: str = "none"  # none | logit | shift
  logit_alpha: float = 0.05
  conditioner: str = "conv"  # images: conv (ResNet) or glow (Glow's 3x3-1x1-3x3 network)
  # Of the conditioner networks only (gm_jax.models.precision): couplings, log-determinants, 1x1
  # convolutions, actnorm and the base density stay float32.
  compute_dtype: str = "float32"
  transform: str = "affine"  # maf / iaf: affine | spline
  num_bins: int = 8  # spline transforms (nsf; maf / iaf with transform spline)
  tail_bound: float = 3.0  # splines: the interval [-B, B] outside which they are the identity
  coupling_scale_init: float = 1.0  # affine couplings: the initial bound on each layer's log-scale
  conditioner_bias_init: str = "zeros"  # MLP conditioners' hidden biases (bijectors.hidden_bias_init)
  # Glow and NSF images: each level's steps as one nn.scan (bijectors.GlowSteps); NICE and RealNVP
  # vectors: the couplings as one scan over pairs (bijectors.CouplingPairs). Compiled once; the same flow
  # and initialization law, with the parameters stacked (checkpoints do not carry across).
  scan_steps: bool = False
  # ResNet (conv) conditioners: the residual blocks as one nn.scan, compiled once per conditioner. The
  # same function and initialization law, with each conditioner's block parameters stacked.
  scan_blocks: bool = False

  @property
  def dtype(self):
    return precision.compute_dtype(self.compute_dtype)

  @property
  def is_image(self) -> bool:
    return len(self.x_shape) == 3


def _preprocess(cfg: FlowConfig) -> list[nn.Module]:
  if cfg.preprocess == "logit":
    return [bj.Logit(cfg.logit_alpha)]
  if cfg.preprocess == "shift":
    return [bj.ScaleShift(1.0, -0.5)]
  if cfg.preprocess == "none":
    return []
  raise ValueError(f"unknown model.preprocess {cfg.preprocess!r}; use none, logit or shift")


def _coupling(cfg: FlowConfig, mask: np.ndarray, additive: bool) -> bj.Coupling:
  kind = cfg.conditioner if mask.ndim == 3 else "mlp"
  conditioner = bj.make_conditioner(kind, cfg.hidden, 1 if additive else 2, cfg.dtype, cfg.scan_blocks,
                                    cfg.conditioner_bias_init)
  return bj.Coupling(mask, conditioner, additive=additive, scale_init=cfg.coupling_scale_init)


def _couplings(cfg: FlowConfig, shape, mask_fn, count: int, additive: bool = False):
  return [_coupling(cfg, mask_fn(shape, i % 2), additive) for i in range(count)]


def _vector_couplings(cfg: FlowConfig, count: int, additive: bool) -> list[nn.Module]:
  """NICE's or RealNVP's couplings of a vector, alternating their masks: unrolled, or (cfg.scan_steps)
  as pairs in one scan, an odd count's last coupling after them."""
  if not cfg.scan_steps:
    return _couplings(cfg, cfg.x_shape, bj.checkerboard_mask, count, additive)
  make_coupling = lambda parity: _coupling(cfg, bj.checkerboard_mask(cfg.x_shape, parity), additive)
  pairs = [bj.CouplingPairs(make_coupling, count // 2)] if count >= 2 else []
  return pairs + ([make_coupling(0)] if count % 2 else [])


def _vector_layers(cfg: FlowConfig) -> list[nn.Module]:
  shape = cfg.x_shape
  n = cfg.steps_per_level * cfg.num_levels
  if cfg.architecture == "nice":
    return _vector_couplings(cfg, n, additive=True) + [bj.ActNorm()]
  if cfg.architecture == "realnvp":
    return _vector_couplings(cfg, n, additive=False)
  layers = []
  for i in range(n):
    layers += [bj.ActNorm(), bj.InvertibleLinear(seed=i),
               bj.Coupling(bj.channel_mask(shape, 0),
                           bj.make_conditioner("mlp", cfg.hidden, 2, cfg.dtype,
                                               bias_init=cfg.conditioner_bias_init),
                           scale_init=cfg.coupling_scale_init)]
  return layers


def _realnvp_level(cfg: FlowConfig, shape, level: int, additive: bool) -> nn.Module:
  h, w, c = shape
  k = cfg.steps_per_level
  if level == cfg.num_levels - 1:
    return bj.Chain(_couplings(cfg, shape, bj.checkerboard_mask, k, additive))
  squeezed = (h // 2, w // 2, 4 * c)
  layers = _couplings(cfg, shape, bj.checkerboard_mask, k, additive)
  layers += [bj.Squeeze()]
  layers += _couplings(cfg, squeezed, bj.channel_mask, k, additive)
  layers += [bj.FactorOut(_realnvp_level(cfg, (h // 2, w // 2, 2 * c), level + 1, additive)),
             bj.Squeeze(undo=True)]
  return bj.Chain(layers)


def _glow_level(cfg: FlowConfig, shape, level: int) -> nn.Module:
  h, w, c = shape
  squeezed = (h // 2, w // 2, 4 * c)
  make_net = lambda: bj.make_conditioner(cfg.conditioner, cfg.hidden, 2, cfg.dtype, cfg.scan_blocks)
  coupling = lambda: bj.Coupling(bj.channel_mask(squeezed, 0), make_net(), scale_init=cfg.coupling_scale_init)
  layers = [bj.Squeeze()] + flow_architectures.glow_steps(cfg, level, coupling)
  if level < cfg.num_levels - 1:
    layers += [bj.FactorOut(_glow_level(cfg, (h // 2, w // 2, 2 * c), level + 1))]
  layers += [bj.Squeeze(undo=True)]
  return bj.Chain(layers)


ARCHITECTURES = ("nice", "realnvp", "glow", *flow_architectures.ARCHITECTURES)


def check_architecture(name: str) -> None:
  if name not in ARCHITECTURES:
    raise ValueError(f"unknown model.architecture {name!r}; use one of {', '.join(ARCHITECTURES)}")


def build_bijector(cfg: FlowConfig) -> bj.Chain:
  check_architecture(cfg.architecture)
  scanned = ("glow", "nsf") if cfg.is_image else ("nice", "realnvp")
  if cfg.scan_steps and cfg.architecture not in scanned:
    kind = "images" if cfg.is_image else "vectors"
    raise ValueError(f"model.scan_steps scans the steps of {' and '.join(scanned)} {kind}, not of "
                     f"{cfg.architecture}; set it False")
  if cfg.architecture in flow_architectures.ARCHITECTURES:
    return bj.Chain(_preprocess(cfg) + flow_architectures.build_layers(cfg))
  if not cfg.is_image:
    return bj.Chain(_preprocess(cfg) + _vector_layers(cfg))
  squeezes = cfg.num_levels if cfg.architecture == "glow" else cfg.num_levels - 1
  flow_architectures.check_squeezable(cfg, squeezes)
  if cfg.architecture == "glow":
    return bj.Chain(_preprocess(cfg) + [_glow_level(cfg, cfg.x_shape, 0)])
  if cfg.architecture == "nice":  # volume-preserving couplings, then NICE's per-dimension scaling
    body = _realnvp_level(cfg, cfg.x_shape, 0, additive=True)
    return bj.Chain(_preprocess(cfg) + [body, bj.DiagonalScale()])
  return bj.Chain(_preprocess(cfg) + [_realnvp_level(cfg, cfg.x_shape, 0, additive=False)])


class Flow(nn.Module):
  """A bijector to the latent plus the base density.

  __call__(x) -> log p(x) per example (x continuous: points, or dequantized images in [0, 1)).
  sample(key, n, temperature) draws z ~ p_z with its std scaled by temperature and returns f^-1(z).
  """

  config: FlowConfig

  def setup(self):
    self.bijector = build_bijector(self.config)
    if self.config.base == "learned":
      self.base_mean = self.param("base_mean", nn.initializers.zeros, self.config.x_shape)
      self.base_log_std = self.param("base_log_std", nn.initializers.zeros, self.config.x_shape)
    elif self.config.base != "standard":
      raise ValueError(f"unknown model.base {self.config.base!r}; use standard or learned")

  def _base(self):
    if self.config.base == "learned":
      return self.base_mean, self.base_log_std
    zeros = jnp.zeros(self.config.x_shape)
    return zeros, zeros

  def base_log_prob(self, z):
    mean, log_std = self._base()
    per_dim = -0.5 * ((z - mean) * jnp.exp(-log_std)) ** 2 - log_std - 0.5 * _LOG_2PI
    return jnp.sum(per_dim.reshape(z.shape[0], -1), axis=-1)

  def __call__(self, x):
    z, log_det = self.bijector(x)
    return self.base_log_prob(z) + log_det

  def forward(self, x):
    return self.bijector(x)

  def sample(self, key, n: int, temperature: float = 1.0):
    mean, log_std = self._base()
    z = mean + temperature * jnp.exp(log_std) * jax.random.normal(key, (n, *self.config.x_shape))
    return self.bijector(z, inverse=True)[0]


class VariationalDequantizer(nn.Module):
  """q(u | x) on [0, 1)^D (Flow++): u = sigmoid(g(eps; x)), eps ~ N(0, I), g a conditional affine-coupling
  flow that sees the integer image. Returns u and log q(u | x)."""

  x_shape: tuple[int, ...]
  hidden: tuple[int, ...] = (32, 32)
  num_couplings: int = 4
  dtype: Any = jnp.float32  # of the conditioners (gm_jax.models.precision)

  def setup(self):
    kind = "conv" if len(self.x_shape) == 3 else "mlp"
    layers = [bj.Coupling(bj.checkerboard_mask(self.x_shape, i % 2),
                          bj.make_conditioner(kind, self.hidden, 2, self.dtype))
              for i in range(self.num_couplings)]
    self.flow = bj.Chain(layers + [bj.Sigmoid()])

  def __call__(self, keys_B, x_scaled):
    """keys_B: one PRNG key per example; x_scaled: the integer image scaled to [0, 1]."""
    eps = jax.vmap(lambda k: jax.random.normal(k, x_scaled.shape[1:]))(keys_B)
    u, log_det = self.flow(eps, False, x_scaled)
    log_q_eps = jnp.sum((-0.5 * eps**2 - 0.5 * _LOG_2PI).reshape(eps.shape[0], -1), axis=-1)
    return u, log_q_eps - log_det


class DequantizedFlow(nn.Module):
  """A flow on integer-level data through dequantization (uniform, or variational as in Flow++).

  With y = (k + u) / L in [0, 1)^D and u ~ q(u | k):
    log P(k) >= E_q[log p_flow(y) - log q(u | k)] - D log L
  (q uniform: log q(u | k) = 0). `log_likelihood_bound` returns the single-sample value of that bound
  per example, which is what nll_nats and bits/dim report on the discrete data.
  """

  flow_config: FlowConfig
  num_levels: int
  dequantization: str = "uniform"  # uniform | variational
  dequantizer_hidden: tuple[int, ...] = (32, 32)
  dequantizer_couplings: int = 4

  def setup(self):
    self.flow = Flow(self.flow_config)
    if self.dequantization == "variational":
      self.dequantizer = VariationalDequantizer(self.flow_config.x_shape, self.dequantizer_hidden,
                                                self.dequantizer_couplings, self.flow_config.dtype)
    elif self.dequantization != "uniform":
      raise ValueError(f"unknown objective.dequantization {self.dequantization!r}; "
                       f"use uniform or variational")

  def __call__(self, levels, keys_B):
    return self.log_likelihood_bound(levels, keys_B)

  def log_likelihood_bound(self, levels, keys_B):
    k = levels.astype(jnp.float32)
    if self.dequantization == "uniform":
      u = jax.vmap(lambda key: jax.random.uniform(key, levels.shape[1:]))(keys_B)
      log_q_u = 0.0
    else:
      u, log_q_u = self.dequantizer(keys_B, k / (self.num_levels - 1))
    y = transforms.point_in_bin(levels, u, self.num_levels)
    num_dims = math.prod(self.flow_config.x_shape)
    return self.flow(y) - log_q_u - num_dims * math.log(self.num_levels)

  def sample(self, key, n: int, temperature: float = 1.0, with_unit: bool = False):
    """Integer levels: the flow's sample y in [0, 1) mapped to its bin floor(y * L) (and y itself, with
    with_unit=True, in which a non-finite value still shows)."""
    y = self.flow.sample(key, n, temperature)
    levels = jnp.clip(jnp.floor(y * self.num_levels), 0, self.num_levels - 1).astype(jnp.int32)
    return (levels, y) if with_unit else levels
