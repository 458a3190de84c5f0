"""Invertible layers with cheap log-determinants: the parts of NICE, RealNVP and Glow.

Every layer is a Flax module called as `layer(x, inverse=False, cond=None) -> (y, log_det_B)`:
forward maps data towards the latent, `inverse=True` maps back, and log_det_B is log |det dy/dx| of the
direction that was run (so the inverse's is minus the forward's at the matching point). Inputs are
(B, D) vectors or (B, H, W, C) images; `cond` is an optional conditioning input of the same batch size
(used by the variational dequantizer). A `Chain` of layers is itself a layer.

Layers whose parameters depend on data (ActNorm) initialize them from the batch seen at `init`, which
runs the forward direction.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gm_jax.models import precision


def _sum_except_batch(a: jax.Array) -> jax.Array:
  return jnp.sum(a.reshape(a.shape[0], -1), axis=-1)


def compose(steps: Sequence[Callable], x, inverse: bool, total):
  """Runs steps, each (x, inverse) -> (x, log_det), in order (inverse: in reverse order), adding each
  log-det to `total`; returns (x, total)."""
  for step in (reversed(steps) if inverse else steps):
    x, log_det = step(x, inverse)
    total = total + log_det
  return x, total


class Chain(nn.Module):
  """Composition: forward runs the layers in order, inverse in reverse order; log-dets add."""

  layers: Sequence[nn.Module]

  def __call__(self, x, inverse: bool = False, cond=None):
    steps = [lambda x, inverse, layer=layer: layer(x, inverse, cond) for layer in self.layers]
    return compose(steps, x, inverse, jnp.zeros(x.shape[0]))


# Masks --------------------------------------------------------------------------------------------------

def checkerboard_mask(shape: tuple[int, ...], parity: int) -> np.ndarray:
  """1 where (row + col) % 2 == parity, for every channel; vectors alternate by index."""
  if len(shape) == 1:
    return (np.arange(shape[0]) % 2 == parity).astype(np.float32)
  h, w, c = shape
  board = (np.add.outer(np.arange(h), np.arange(w)) % 2 == parity).astype(np.float32)
  return np.repeat(board[:, :, None], c, axis=2)


def channel_mask(shape: tuple[int, ...], parity: int) -> np.ndarray:
  """1 on the first (parity 0) or second (parity 1) half of the channels (of a vector's entries)."""
  c = shape[-1]
  first = np.arange(c) < c // 2
  keep = first if parity == 0 else ~first
  return np.broadcast_to(keep.astype(np.float32), shape).copy()


# Conditioner networks -----------------------------------------------------------------------------------

HIDDEN_BIAS_INITS = ("zeros", "uniform")


def hidden_bias_init(kind: str, fan_in: int) -> Callable:
  """zeros: Flax's default; every ReLU of a first layer then has its kink where its input is 0 (on a
  coupling's masked input, a line through the origin), and a second layer's units are kinked there too.
  uniform: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's nn.Linear default, which spreads the kinks over
  the inputs' range."""
  if kind == "zeros":
    return nn.initializers.zeros
  if kind == "uniform":
    bound = 1.0 / math.sqrt(fan_in)
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)
  raise ValueError(f"unknown conditioner bias init {kind!r}; use {' or '.join(HIDDEN_BIAS_INITS)}")


class MLPConditioner(nn.Module):
  """(B, D) -> (B, D * outputs); the last layer starts at zero, so a coupling starts as the identity."""

  hidden: Sequence[int]
  outputs: int
  dtype: Any = jnp.float32  # compute dtype of the network (gm_jax.models.precision); outputs are float32
  bias_init: str = "zeros"  # of the hidden layers (hidden_bias_init)

  @nn.compact
  def __call__(self, h):
    dense = functools.partial(precision.Dense, dtype=self.dtype)
    d = h.shape[-1]
    for f in self.hidden:
      h = nn.relu(dense(f, bias_init=hidden_bias_init(self.bias_init, h.shape[-1]))(h))
    out = dense(d * self.outputs, kernel_init=nn.initializers.zeros)(h)
    return out.reshape(h.shape[0], d, self.outputs)


def _residual_block(conv, features: int, h):
  """relu(h + 1x1(relu(3x3(h)))), its convolutions created in the calling module's scope."""
  r = nn.relu(conv(features, (3, 3))(h))
  return nn.relu(h + conv(features, (1, 1))(r))


class ResidualBlockStep(nn.Module):
  """A residual block as the body of an nn.scan over a conditioner's blocks: (h, None) -> (h, None)."""

  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, h, _):
    return _residual_block(functools.partial(precision.Conv, dtype=self.dtype), self.features, h), None


class ConvConditioner(nn.Module):
  """(B, H, W, C) -> (B, H, W, C, outputs): 3x3 conv, residual 3x3-1x1 blocks, zero-initialized 3x3 conv.

  scan_blocks: the blocks as one nn.scan over stacked parameters, so XLA compiles a block once rather
  than once per block; the same function and initialization law, with a different parameter layout.
  """

  features: int
  num_blocks: int
  outputs: int
  dtype: Any = jnp.float32
  scan_blocks: bool = False

  @nn.compact
  def __call__(self, h):
    conv = functools.partial(precision.Conv, dtype=self.dtype)
    c = h.shape[-1]
    h = nn.relu(conv(self.features, (3, 3))(h))
    if self.scan_blocks and self.num_blocks > 1:
      blocks = nn.scan(ResidualBlockStep, variable_axes={"params": 0}, split_rngs={"params": True},
                       length=self.num_blocks)
      h, _ = blocks(self.features, self.dtype, name="blocks")(h, None)
    else:
      for _ in range(self.num_blocks):
        h = _residual_block(conv, self.features, h)
    out = conv(c * self.outputs, (3, 3), kernel_init=nn.initializers.zeros)(h)
    return out.reshape(*h.shape[:-1], c, self.outputs)


class GlowConditioner(nn.Module):
  """Glow's coupling network: 3x3 conv, ReLU, 1x1 conv, ReLU, zero-initialized 3x3 conv."""

  features: int
  outputs: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, h):
    conv = functools.partial(precision.Conv, dtype=self.dtype)
    c = h.shape[-1]
    h = nn.relu(conv(self.features, (3, 3))(h))
    h = nn.relu(conv(self.features, (1, 1))(h))
    out = conv(c * self.outputs, (3, 3), kernel_init=nn.initializers.zeros)(h)
    return out.reshape(*h.shape[:-1], c, self.outputs)


def make_conditioner(kind: str, hidden: Sequence[int], outputs: int, dtype: Any = jnp.float32,
                     scan_blocks: bool = False, bias_init: str = "zeros") -> nn.Module:
  """mlp: Dense layers of the given sizes, their biases started by `bias_init` (hidden_bias_init); conv: a
  ResNet with hidden[0] features and len(hidden) - 1 residual blocks (one nn.scan with scan_blocks); glow:
  Glow's 3x3 / 1x1 / zero-3x3 network with hidden[0] features."""
  if kind == "mlp":
    return MLPConditioner(tuple(hidden), outputs, dtype, bias_init)
  if kind == "conv":
    return ConvConditioner(features=hidden[0], num_blocks=len(hidden) - 1, outputs=outputs, dtype=dtype,
                           scan_blocks=scan_blocks)
  if kind == "glow":
    return GlowConditioner(features=hidden[0], outputs=outputs, dtype=dtype)
  raise ValueError(f"unknown conditioner {kind!r}; use mlp, conv or glow")


# Couplings ------------------------------------------------------------------------------------------------

def masked_conditioner(conditioner: nn.Module, x: jax.Array, mask: jax.Array, cond=None) -> jax.Array:
  """conditioner(mask * x [, cond]): its outputs for x's entries (..., D, outputs). With cond, an image's
  cond channels join the masked input's channels, a vector's cond entries join its entries, and the
  outputs for them are dropped."""
  h = x * mask
  if cond is None:
    return conditioner(h)
  h = jnp.concatenate([h, cond.reshape(h.shape[:-1] + (-1,))], axis=-1)
  return conditioner(h)[..., :x.shape[-1], :]


class Coupling(nn.Module):
  """y = m * x + (1 - m) * (x * exp(s) + t), with (s, t) = net(m * x [, cond]).

  additive=True is NICE's coupling (s = 0, volume preserving). Otherwise s = scale * tanh(raw), a learned
  per-dimension bound on the log-scale (RealNVP), starting at `scale_init`. log |det| = sum over the
  changed dims of s. The bound hardly moves in training (its gradient averages tanh(raw) over the batch,
  which stays near zero), so `scale_init` is in effect the largest log-scale one coupling can apply.
  """

  mask: np.ndarray
  conditioner: nn.Module
  additive: bool = False
  scale_init: float = 1.0

  @nn.compact
  def __call__(self, x, inverse: bool = False, cond=None):
    m = jnp.asarray(self.mask)
    out = masked_conditioner(self.conditioner, x, m, cond)
    t = out[..., 0]
    if self.additive:
      s = jnp.zeros_like(t)
    else:
      scale = self.param("scale", nn.initializers.constant(self.scale_init), x.shape[1:])
      s = scale * jnp.tanh(out[..., 1])
    s, t = (1 - m) * s, (1 - m) * t
    if inverse:
      return m * x + (1 - m) * ((x - t) * jnp.exp(-s)), -_sum_except_batch(s)
    return m * x + (1 - m) * (x * jnp.exp(s) + t), _sum_except_batch(s)


class CouplingPair(nn.Module):
  """make_coupling(0) then make_coupling(1) (couplings with complementary masks), the body of
  CouplingPairs' scan: carry (x, log_det so far)."""

  make_coupling: Callable[[int], nn.Module]
  inverse: bool

  def setup(self):
    self.first, self.second = self.make_coupling(0), self.make_coupling(1)

  def __call__(self, carry, cond):
    x, total = carry
    steps = [lambda x, inverse, layer=layer: layer(x, inverse, cond) for layer in (self.first, self.second)]
    return compose(steps, x, self.inverse, total), None


class CouplingPairs(nn.Module):
  """`pairs` alternating pairs of couplings (make_coupling(parity) for parity 0, 1) as one nn.scan over
  stacked parameters, so XLA compiles a pair once rather than once per coupling: the map and
  initialization law of the Chain of make_coupling(i % 2) for i < 2 * pairs."""

  make_coupling: Callable[[int], nn.Module]
  pairs: int

  @nn.compact
  def __call__(self, x, inverse: bool = False, cond=None):
    scan = nn.scan(CouplingPair, variable_axes={"params": 0}, split_rngs={"params": True},
                   in_axes=nn.broadcast, length=self.pairs, reverse=inverse)
    (x, log_det), _ = scan(self.make_coupling, inverse, name="pairs")((x, jnp.zeros(x.shape[0])), cond)
    return x, log_det


# Permutations and invertible linear maps ------------------------------------------------------------------

class Permute(nn.Module):
  """A fixed permutation of the last axis (channels, or a vector's entries): reverse, or random by seed."""

  kind: str = "reverse"
  seed: int = 0

  def permutation(self, n: int) -> np.ndarray:
    if self.kind == "reverse":
      return np.arange(n)[::-1].copy()
    if self.kind == "random":
      return np.random.default_rng(self.seed).permutation(n)
    raise ValueError(f"unknown permutation {self.kind!r}; use reverse or random")

  def __call__(self, x, inverse: bool = False, cond=None):
    perm = self.permutation(x.shape[-1])
    index = np.argsort(perm) if inverse else perm
    return x[..., index], jnp.zeros(x.shape[0])


def rotation_lu(channels: int, seed: int) -> tuple[np.ndarray, ...]:
  """Glow's initial 1x1 convolution, a random rotation (by seed), as (P, strictly lower L, strictly
  upper U, log |diag U|, sign diag U) in float32: the fixed P and sign, and the learned parts' start."""
  q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(channels, channels)))
  p, lower, upper = _lu(q)
  diag = np.diag(upper)
  parts = (p, np.tril(lower, -1), np.triu(upper, 1), np.log(np.abs(diag)), np.sign(diag))
  return tuple(np.asarray(a, np.float32) for a in parts)


class InvertibleLinear(nn.Module):
  """Glow's invertible 1x1 convolution, W = P L (U + diag(sign * exp(log_s))) (LU parameterization),
  applied to the last axis at every position; log |det| = positions * sum(log_s)."""

  seed: int = 0

  @nn.compact
  def __call__(self, x, inverse: bool = False, cond=None, decomposition=None):
    """decomposition: rotation_lu's arrays, passed in by a scan whose steps start from different
    rotations; by default rotation_lu(channels, seed)."""
    c = x.shape[-1]
    p, lower0, upper0, log_s0, sign = decomposition or rotation_lu(c, self.seed)
    lower = self.param("lower", lambda _: jnp.asarray(lower0))
    upper = self.param("upper", lambda _: jnp.asarray(upper0))
    log_s = self.param("log_s", lambda _: jnp.asarray(log_s0))
    L = jnp.tril(lower, -1) + jnp.eye(c)
    U = jnp.triu(upper, 1) + jnp.diag(sign * jnp.exp(log_s))
    W = jnp.asarray(p) @ L @ U
    positions = int(np.prod(x.shape[1:-1])) if x.ndim > 2 else 1
    log_det = positions * jnp.sum(log_s) * jnp.ones(x.shape[0])
    if inverse:
      return x @ jnp.linalg.inv(W).T, -log_det
    return x @ W.T, log_det


def _lu(a: np.ndarray):
  """a = P L U with unit-lower L (partial pivoting), in numpy, for initialization."""
  import scipy.linalg

  return scipy.linalg.lu(a)


class ActNorm(nn.Module):
  """y = (x + bias) * exp(log_scale) per channel; initialized so the first batch has zero mean and unit
  variance per channel (Glow's data-dependent init)."""

  @nn.compact
  def __call__(self, x, inverse: bool = False, cond=None):
    axes = tuple(range(x.ndim - 1))
    bias = self.param("bias", lambda _: -jnp.mean(x, axis=axes))
    log_scale = self.param("log_scale", lambda _: -jnp.log(jnp.std(x, axis=axes) + 1e-6))
    positions = int(np.prod(x.shape[1:-1])) if x.ndim > 2 else 1
    log_det = positions * jnp.sum(log_scale) * jnp.ones(x.shape[0])
    if inverse:
      return x * jnp.exp(-log_scale) - bias, -log_det
    return (x + bias) * jnp.exp(log_scale), log_det


class DiagonalScale(nn.Module):
  """y = x * exp(log_scale) with a learned log-scale per dimension, starting at 0 (NICE's scaling layer S,
  the only part of NICE that changes volume)."""

  @nn.compact
  def __call__(self, x, inverse: bool = False, cond=None):
    log_scale = self.param("log_scale", nn.initializers.zeros, x.shape[1:])
    log_det = jnp.sum(log_scale) * jnp.ones(x.shape[0])
    if inverse:
      return x * jnp.exp(-log_scale), -log_det
    return x * jnp.exp(log_scale), log_det


class GlowStep(nn.Module):
  """ActNorm -> invertible 1x1 convolution -> coupling (`make_coupling()`), the body of GlowSteps' scan:
  carry (x, log_det so far); per step, its 1x1 convolution's rotation_lu arrays."""

  make_coupling: Callable[[], nn.Module]
  inverse: bool

  def setup(self):
    self.norm, self.linear, self.coupling = ActNorm(), InvertibleLinear(), self.make_coupling()

  def __call__(self, carry, decomposition, cond):
    x, total = carry
    steps = [self.norm, lambda x, inverse: self.linear(x, inverse, decomposition=decomposition),
             lambda x, inverse: self.coupling(x, inverse, cond)]
    return compose(steps, x, self.inverse, total), None


class GlowSteps(nn.Module):
  """Glow's steps, one per seed (each step's 1x1 convolution starts from rotation_lu(channels, seed)),
  as one nn.scan over stacked parameters, so XLA compiles a step once rather than once per step. The
  same map and initialization as the Chain of [ActNorm(), InvertibleLinear(seed), make_coupling()]
  for each seed; forward runs the steps in order, inverse in reverse."""

  make_coupling: Callable[[], nn.Module]
  seeds: tuple[int, ...]

  @nn.compact
  def __call__(self, x, inverse: bool = False, cond=None):
    decompositions = zip(*(rotation_lu(x.shape[-1], seed) for seed in self.seeds))
    stacked = tuple(jnp.asarray(np.stack(parts)) for parts in decompositions)
    scan = nn.scan(GlowStep, variable_axes={"params": 0}, split_rngs={"params": True},
                   in_axes=(0, nn.broadcast), length=len(self.seeds), reverse=inverse)
    steps = scan(self.make_coupling, inverse, name="steps")
    (x, log_det), _ = steps((x, jnp.zeros(x.shape[0])), stacked, cond)
    return x, log_det


# Reshapes and multi-scale --------------------------------------------------------------------------------

def squeeze(x):
  """(B, H, W, C) -> (B, H/2, W/2, 4C): each 2x2 patch becomes channels."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h // 2, w // 2, 4 * c)


def unsqueeze(x):
  b, h, w, c = x.shape
  x = x.reshape(b, h, w, 2, 2, c // 4).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, 2 * h, 2 * w, c // 4)


class Squeeze(nn.Module):
  undo: bool = False  # True: the unsqueeze that ends a multi-scale level

  def __call__(self, x, inverse: bool = False, cond=None):
    forward = squeeze if not self.undo else unsqueeze
    backward = unsqueeze if not self.undo else squeeze
    return (backward(x) if inverse else forward(x)), jnp.zeros(x.shape[0])


class FactorOut(nn.Module):
  """Multi-scale factor-out: the second half of the channels leaves the flow here (it is part of the
  latent from now on); `inner` transforms the first half only."""

  inner: nn.Module

  def __call__(self, x, inverse: bool = False, cond=None):
    c = x.shape[-1] // 2
    kept, out = x[..., :c], x[..., c:]
    kept, log_det = self.inner(kept, inverse, cond)
    return jnp.concatenate([kept, out], axis=-1), log_det


# Data preprocessing --------------------------------------------------------------------------------------

class Logit(nn.Module):
  """x in (0, 1) -> logit(alpha + (1 - 2 alpha) x) (RealNVP's preprocessing), with its Jacobian."""

  alpha: float = 0.05

  def __call__(self, x, inverse: bool = False, cond=None):
    a = self.alpha
    if inverse:
      p = jax.nn.sigmoid(x)
      y = (p - a) / (1 - 2 * a)
      # dy/dx = p (1 - p) / (1 - 2a)
      return y, _sum_except_batch(jnp.log(p) + jnp.log1p(-p) - jnp.log(1 - 2 * a))
    p = a + (1 - 2 * a) * x
    y = jnp.log(p) - jnp.log1p(-p)
    return y, _sum_except_batch(jnp.log(1 - 2 * a) - jnp.log(p) - jnp.log1p(-p))


class ScaleShift(nn.Module):
  """x -> scale * x + shift with constants (e.g. Glow's x - 0.5, or a data standardization)."""

  scale: float = 1.0
  shift: float = 0.0

  def __call__(self, x, inverse: bool = False, cond=None):
    log_det = float(np.log(abs(self.scale))) * np.prod(x.shape[1:]) * jnp.ones(x.shape[0])
    if inverse:
      return (x - self.shift) / self.scale, -log_det
    return self.scale * x + self.shift, log_det


class Sigmoid(nn.Module):
  """R -> (0, 1), used to end the variational dequantizer's flow."""

  def __call__(self, x, inverse: bool = False, cond=None):
    if inverse:
      y = jnp.log(x) - jnp.log1p(-x)
      return y, -_sum_except_batch(jnp.log(x) + jnp.log1p(-x))
    return jax.nn.sigmoid(x), _sum_except_batch(jax.nn.log_sigmoid(x) + jax.nn.log_sigmoid(-x))

