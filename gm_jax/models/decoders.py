"""Observation models p(x | decoder output) for VAEs (and any network that outputs a distribution).

Each decoder says how many numbers per data dimension it needs (`params_per_dim`), and maps the
network's output `out_BDP` (batch, dims, params) and data `x_BD` to log p(x) summed over dims:

  bernoulli             binary x in {0, 1}; one logit per dim.
  gaussian              continuous x; mean, and a fixed std or a learned log-std per dim.
  categorical           integer levels 0..L-1; L logits per dim (an exact discrete likelihood).
  discretized_logistic  integer levels 0..L-1; the logistic CDF integrated over each level's bin on the
                        [-1, 1] scale, with the edge bins taking the tails (PixelCNN++), so the L
                        probabilities sum to 1 exactly.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

_LOG_2PI = math.log(2 * math.pi)


@dataclasses.dataclass(frozen=True)
class Decoder:
  kind: str
  num_levels: int = 0  # categorical / discretized_logistic
  fixed_std: float = 0.0  # gaussian: > 0 fixes the std, 0 learns a log-std per dim

  def __post_init__(self):
    if self.kind not in ("bernoulli", "gaussian", "categorical", "discretized_logistic"):
      raise ValueError(f"unknown decoder {self.kind!r}; use bernoulli, gaussian, categorical or "
                       f"discretized_logistic")
    if self.kind in ("categorical", "discretized_logistic") and self.num_levels < 2:
      raise ValueError(f"the {self.kind} decoder needs num_levels >= 2")

  @property
  def params_per_dim(self) -> int:
    return {"bernoulli": 1, "categorical": self.num_levels, "discretized_logistic": 2,
            "gaussian": 1 if self.fixed_std > 0 else 2}[self.kind]

  @property
  def is_discrete(self) -> bool:
    return self.kind != "gaussian"

  def log_prob(self, out_BDP: jax.Array, x_BD: jax.Array) -> jax.Array:
    """log p(x | out), summed over the data dimensions; shape (B,)."""
    return jnp.sum(self.log_prob_per_dim(out_BDP, x_BD), axis=-1)

  def log_prob_per_dim(self, out_BDP: jax.Array, x_BD: jax.Array) -> jax.Array:
    if self.kind == "bernoulli":
      logits = out_BDP[..., 0]
      return -(x_BD * jax.nn.softplus(-logits) + (1.0 - x_BD) * jax.nn.softplus(logits))
    if self.kind == "gaussian":
      mean = out_BDP[..., 0]
      log_std = jnp.full_like(mean, math.log(self.fixed_std)) if self.fixed_std > 0 else out_BDP[..., 1]
      return -0.5 * ((x_BD - mean) * jnp.exp(-log_std)) ** 2 - log_std - 0.5 * _LOG_2PI
    levels = x_BD.astype(jnp.int32)
    if self.kind == "categorical":
      log_probs = jax.nn.log_softmax(out_BDP, axis=-1)
      return jnp.take_along_axis(log_probs, levels[..., None], axis=-1)[..., 0]
    return self._discretized_logistic(out_BDP, levels)

  def _discretized_logistic(self, out_BDP: jax.Array, levels_BD: jax.Array) -> jax.Array:
    mean, log_scale = out_BDP[..., 0], jnp.maximum(out_BDP[..., 1], -7.0)
    half_bin = 1.0 / (self.num_levels - 1)
    centre = 2.0 * levels_BD / (self.num_levels - 1) - 1.0  # the level on [-1, 1]
    inv_scale = jnp.exp(-log_scale)
    upper = inv_scale * (centre - mean + half_bin)
    lower = inv_scale * (centre - mean - half_bin)
    # log(sigmoid(upper) - sigmoid(lower)), stable: sigmoid(u) - sigmoid(l) = e^u/(1+e^u) - e^l/(1+e^l).
    log_cdf_upper = jax.nn.log_sigmoid(upper)  # for the first level: P(X <= upper)
    log_sf_lower = jax.nn.log_sigmoid(-lower)  # for the last level: P(X > lower)
    mid = _log_sigmoid_difference(upper, lower, 2.0 * half_bin * inv_scale)
    is_first = levels_BD == 0
    is_last = levels_BD == self.num_levels - 1
    return jnp.where(is_first, log_cdf_upper, jnp.where(is_last, log_sf_lower, mid))

  def sample(self, key: jax.Array, out_BDP: jax.Array) -> jax.Array:
    """One draw of x per row, in the data's own representation (levels, bits or reals)."""
    if self.kind == "bernoulli":
      return jax.random.bernoulli(key, jax.nn.sigmoid(out_BDP[..., 0])).astype(jnp.float32)
    if self.kind == "gaussian":
      mean = out_BDP[..., 0]
      std = self.fixed_std if self.fixed_std > 0 else jnp.exp(out_BDP[..., 1])
      return mean + std * jax.random.normal(key, mean.shape)
    return jax.random.categorical(key, self.level_log_probs(out_BDP), axis=-1)

  def mean(self, out_BDP: jax.Array) -> jax.Array:
    """E[x | out] in the data's representation (expected level for the level decoders)."""
    if self.kind == "bernoulli":
      return jax.nn.sigmoid(out_BDP[..., 0])
    if self.kind == "gaussian":
      return out_BDP[..., 0]
    return jnp.sum(jnp.exp(self.level_log_probs(out_BDP)) * jnp.arange(self.num_levels), axis=-1)

  def level_log_probs(self, out_BDP: jax.Array) -> jax.Array:
    """log P(level) for every level, shape (B, D, L); for the discrete level decoders."""
    if self.kind == "categorical":
      return jax.nn.log_softmax(out_BDP, axis=-1)
    levels = jnp.arange(self.num_levels)
    expanded = jnp.broadcast_to(out_BDP[..., None, :], (*out_BDP.shape[:-1], self.num_levels, 2))
    return self._discretized_logistic(expanded, jnp.broadcast_to(levels, expanded.shape[:-1]))


def _log_sigmoid_difference(upper: jax.Array, lower: jax.Array, width: jax.Array) -> jax.Array:
  """log(sigmoid(upper) - sigmoid(lower)) for upper = lower + width, width > 0, accurate in both tails.

  sigmoid(u) - sigmoid(l) = sigmoid(u) * sigmoid(-l) * (1 - e^(l - u)). The width is passed rather than
  taken as upper - lower: that difference of two rounded numbers loses digits when they are large (a
  wide logistic far from the bin: 1e-4 nats off at mean 50, log-scale 5).
  """
  return jax.nn.log_sigmoid(upper) + jax.nn.log_sigmoid(-lower) + jnp.log(-jnp.expm1(-width))
