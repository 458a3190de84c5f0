"""Variational autoencoders with L >= 1 Gaussian stochastic layers (L = 1: the VAE of Kingma & Welling).

Generative chain (Markovian, as in the hierarchical VAE that diffusion models generalize):
    p(x, z_1..z_L) = p(z_L) p(z_{L-1} | z_L) ... p(z_1 | z_2) p(x | z_1),  p(z_L) = N(0, I)
Inference chain:
    q(z_1..z_L | x) = q(z_1 | x) q(z_2 | z_1) ... q(z_L | z_{L-1})
Every conditional between latents is a diagonal Gaussian whose mean and log-std an MLP computes; the
first inference step may be convolutional. p(x | z_1) is any gm_jax.models.decoders.Decoder.

With num_classes > 0 it is a conditional VAE (Sohn et al. 2015) of p(x | y) for a class label y: the
label's one-hot vector joins the inputs of q(z_1 | x, y) and of p(x | z_1, y), and the latents' prior
stays label-free, so the bounds below are bounds on log p(x | y).

`log_weights(x, key, K)` draws K samples of the whole chain per example and returns the terms of
log w = log p(x, z) - log q(z | x); the ELBO, the IWAE bound and its estimator are built from them
(gm_jax.objectives.elbo).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gm_jax.models import labels, precision
from gm_jax.models.decoders import Decoder

_LOG_2PI = math.log(2 * math.pi)

ACTIVATIONS = {"tanh": jnp.tanh, "relu": nn.relu, "gelu": nn.gelu, "softplus": nn.softplus}


def gaussian_log_prob(z: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
  """log N(z; mean, diag(exp(log_std))^2), summed over the last axis."""
  return jnp.sum(-0.5 * ((z - mean) * jnp.exp(-log_std)) ** 2 - log_std - 0.5 * _LOG_2PI, axis=-1)


def standard_normal_log_prob(z: jax.Array) -> jax.Array:
  return jnp.sum(-0.5 * z**2 - 0.5 * _LOG_2PI, axis=-1)


def kl_to_standard_normal(mean: jax.Array, log_std: jax.Array) -> jax.Array:
  """KL(N(mean, diag(std^2)) || N(0, I)) = 1/2 sum(std^2 + mean^2 - 1 - 2 log std), with std^2 - 1 as
  expm1: for a unit near the prior (a collapsed one) std^2 - 1 - 2 log std is a difference of nearly
  equal numbers that lost most of its digits."""
  return 0.5 * jnp.sum(jnp.expm1(2 * log_std) - 2 * log_std + mean**2, axis=-1)


class MLP(nn.Module):
  features: Sequence[int]
  activation: str = "tanh"
  dtype: Any = jnp.float32  # compute dtype of the matmuls (gm_jax.models.precision)

  @nn.compact
  def __call__(self, h):
    for f in self.features:
      h = ACTIVATIONS[self.activation](precision.Dense(f, dtype=self.dtype)(h))
    return h


class GaussianHead(nn.Module):
  """MLP -> (mean, log_std) of a diagonal Gaussian over `dim` variables."""

  hidden: Sequence[int]
  dim: int
  activation: str = "tanh"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, h):
    h = MLP(self.hidden, self.activation, self.dtype)(h)
    mean = precision.Dense(self.dim, dtype=self.dtype, name="mean")(h)
    log_std = precision.Dense(self.dim, dtype=self.dtype, name="log_std")(h)
    return mean, log_std


class ConvFeatures(nn.Module):
  """Strided 3x3 convolutions, flattened: the convolutional variant of q(z_1 | x)'s trunk."""

  channels: Sequence[int]
  activation: str = "relu"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x_BHWC):
    h = x_BHWC
    for c in self.channels:
      h = ACTIVATIONS[self.activation](precision.Conv(c, (3, 3), strides=(2, 2), padding="SAME",
                                                      dtype=self.dtype)(h))
    return h.reshape(h.shape[0], -1)


@dataclasses.dataclass(frozen=True)
class VAEConfig:
  """The typed model config (built from config.model at the model boundary).

  latent_dims: sizes of z_1..z_L. hidden: per layer l, the hidden sizes of the MLPs of q(z_l | z_{l-1})
  and, reversed, of p(z_{l-1} | z_l) (p(x | z_1) for l = 1). conv_channels: non-empty makes q(z_1 | x)
  convolutional (image data).
  """

  x_shape: tuple[int, ...]
  latent_dims: tuple[int, ...]
  hidden: tuple[tuple[int, ...], ...]
  decoder: Decoder
  activation: str = "tanh"
  conv_channels: tuple[int, ...] = ()
  min_log_std: float = -6.0
  compute_dtype: str = "float32"  # of matmuls and convolutions; likelihoods stay float32
  num_classes: int = 0  # > 0: conditional on a label in [0, num_classes)

  @property
  def dtype(self):
    return precision.compute_dtype(self.compute_dtype)

  def __post_init__(self):
    if len(self.hidden) != len(self.latent_dims):
      raise ValueError(f"model.hidden needs one tuple of sizes per stochastic layer: got {len(self.hidden)} "
                       f"for latent_dims {self.latent_dims}")
    if self.activation not in ACTIVATIONS:
      raise ValueError(f"unknown model.activation {self.activation!r}; use one of {sorted(ACTIVATIONS)}")
    if self.conv_channels and len(self.x_shape) != 3:
      raise ValueError(f"model.conv_channels={self.conv_channels} makes q(z_1 | x) convolutional, for "
                       f"images; the data are {self.x_shape} vectors: set model.conv_channels=()")

  @property
  def x_dim(self) -> int:
    return math.prod(self.x_shape)


class HierarchicalVAE(nn.Module):
  config: VAEConfig

  def setup(self):
    c = self.config
    num_layers = len(c.latent_dims)
    self.conv = ConvFeatures(c.conv_channels, dtype=c.dtype) if c.conv_channels else None
    self.q = [GaussianHead(c.hidden[l], c.latent_dims[l], c.activation, c.dtype, name=f"q_z{l + 1}")
              for l in range(num_layers)]
    self.p = [GaussianHead(tuple(reversed(c.hidden[l])), c.latent_dims[l - 1], c.activation, c.dtype,
                           name=f"p_z{l}") for l in range(1, num_layers)]
    self.x_trunk = MLP(tuple(reversed(c.hidden[0])), c.activation, c.dtype, name="p_x_trunk")
    self.x_out = precision.Dense(c.x_dim * c.decoder.params_per_dim, dtype=c.dtype, name="p_x_out")

  # building blocks ------------------------------------------------------------------------------------
  def encoder_input(self, x: jax.Array) -> jax.Array:
    """The data as the first inference network sees it: real values near [-1, 1] or the points."""
    c = self.config
    h = x.astype(jnp.float32)
    if c.decoder.kind in ("categorical", "discretized_logistic"):
      h = 2.0 * h / (c.decoder.num_levels - 1) - 1.0
    elif c.decoder.kind == "bernoulli":
      h = 2.0 * h - 1.0
    if self.conv is not None:
      return self.conv(h.reshape(h.shape[0], *c.x_shape))
    return h.reshape(h.shape[0], -1)

  def encoder_features(self, x: jax.Array, label_B: jax.Array | None = None) -> jax.Array:
    """The input of q(z_1 | x) (with the label, if conditional)."""
    return labels.append_one_hot(self.encoder_input(x), label_B, self.config.num_classes)

  def posterior(self, layer: int, h: jax.Array) -> tuple[jax.Array, jax.Array]:
    mean, log_std = self.q[layer](h)
    return mean, jnp.maximum(log_std, self.config.min_log_std)

  def prior(self, layer: int, z_above: jax.Array) -> tuple[jax.Array, jax.Array]:
    """p(z_layer | z_{layer+1}) for layer < L - 1 (0-based); the top layer's prior is N(0, I)."""
    mean, log_std = self.p[layer](z_above)
    return mean, jnp.maximum(log_std, self.config.min_log_std)

  def decode(self, z1: jax.Array, label_B: jax.Array | None = None) -> jax.Array:
    """The decoder's parameters for x, shape (..., x_dim, params_per_dim)."""
    out = self.x_out(self.x_trunk(labels.append_one_hot(z1, label_B, self.config.num_classes)))
    return out.reshape(*z1.shape[:-1], self.config.x_dim, self.config.decoder.params_per_dim)

  # the model ------------------------------------------------------------------------------------------
  def __call__(self, x: jax.Array, key: jax.Array, num_samples: int = 1,
               label_B=None) -> dict[str, jax.Array]:
    return self.log_weights(x, key, num_samples, label_B)

  def log_weights(self, x: jax.Array, keys_B: jax.Array, num_samples: int,
                  label_B: jax.Array | None = None) -> dict[str, jax.Array]:
    """K = num_samples draws of z ~ q(z | x) per example, from per-example keys (and labels, if conditional).

    Returns arrays of shape (K, B): 'log_px' = log p(x | z_1); 'log_pz_l' / 'log_qz_l' for l = 1..L
    (log p(z_l | z_{l+1}) with p(z_L) = N(0, I), and log q(z_l | z_{l-1})); 'kl_top_analytic' =
    KL(q(z_L | z_{L-1}) || N(0, I)) in closed form (the same for all K samples given z_{L-1}).
    """
    c = self.config
    num_layers = len(c.latent_dims)
    sample_keys = jax.vmap(lambda k: jax.random.split(k, num_layers))(keys_B)  # (B, L)
    x_flat = x.reshape(x.shape[0], -1)
    h = self.encoder_features(x, label_B)  # (B, F)
    out: dict[str, jax.Array] = {}
    zs = []
    below = jnp.broadcast_to(h, (num_samples, *h.shape))  # (K, B, F)
    for l in range(num_layers):
      mean, log_std = self.posterior(l, below)
      eps = jax.vmap(lambda k: jax.random.normal(k, (num_samples, c.latent_dims[l])), out_axes=1)(
          sample_keys[:, l])  # (K, B, d_l)
      z = mean + jnp.exp(log_std) * eps
      out[f"log_qz{l + 1}"] = gaussian_log_prob(z, mean, log_std)
      zs.append(z)
      below = z
      if l == num_layers - 1:
        out["kl_top_analytic"] = kl_to_standard_normal(mean, log_std)
    for l in range(num_layers):
      if l == num_layers - 1:
        out[f"log_pz{l + 1}"] = standard_normal_log_prob(zs[l])
      else:
        mean, log_std = self.prior(l, zs[l + 1])
        out[f"log_pz{l + 1}"] = gaussian_log_prob(zs[l], mean, log_std)
    decoder_out = self.decode(zs[0], label_B)  # (K, B, D, P)
    x_rep = jnp.broadcast_to(x_flat, (num_samples, *x_flat.shape))
    out["log_px"] = c.decoder.log_prob(decoder_out, x_rep)
    return out

  def encode_mean(self, x: jax.Array, label_B: jax.Array | None = None) -> jax.Array:
    """The mean of q(z_1 | x) (for reconstructions and interpolations)."""
    return self.posterior(0, self.encoder_features(x, label_B))[0]

  def sample(self, key: jax.Array, n: int, label_B: jax.Array | None = None) -> jax.Array:
    """Ancestral sampling: z_L ~ N(0, I), z_l ~ p(z_l | z_{l+1}), x ~ p(x | z_1) (given (n,) labels if
    conditional); x as (n, *x_shape)."""
    c = self.config
    keys = jax.random.split(key, len(c.latent_dims) + 1)
    z = jax.random.normal(keys[-1], (n, c.latent_dims[-1]))
    for l in reversed(range(len(c.latent_dims) - 1)):
      mean, log_std = self.prior(l, z)
      z = mean + jnp.exp(log_std) * jax.random.normal(keys[l + 1], mean.shape)
    x = c.decoder.sample(keys[0], self.decode(z, label_B))
    return x.reshape(n, *c.x_shape)
