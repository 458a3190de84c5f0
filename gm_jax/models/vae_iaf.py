"""A VAE whose posterior is refined by an inverse autoregressive flow (Kingma et al. 2016, "Improved
Variational Inference with Inverse Autoregressive Flow").

The encoder gives a diagonal Gaussian q_0(z_0 | x) and a context c(x); T IAF steps (MADE layers
conditioned on c, alternating order) map z_0 to z_T = f(z_0; c) in one pass each, and
  log q(z_T | x) = log q_0(z_0 | x) - log |det dz_T / dz_0|.
The decoder and prior are those of the one-layer VAE (gm_jax.models.vae). The KL term has no closed
form any more: 'kl_top_analytic' carries the single-sample estimate log q(z_T | x) - log p(z_T), so the
ELBO/IWAE code of gm_jax.objectives.elbo applies unchanged.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from gm_jax.models import bijectors as bj
from gm_jax.models.made import MaskedAutoregressive
from gm_jax.models.vae import MLP, HierarchicalVAE, VAEConfig, gaussian_log_prob, standard_normal_log_prob


class IAFPosteriorVAE(HierarchicalVAE):
  """HierarchicalVAE with one stochastic layer and an IAF posterior (steps, hidden, context size)."""

  iaf_steps: int = 2
  iaf_hidden: Sequence[int] = (64, 64)
  context_dim: int = 16
  iaf_transform: str = "affine"

  def setup(self):
    super().setup()
    c = self.config  # one stochastic layer (make_vae checks)
    self.context = MLP(tuple(c.hidden[0]) + (self.context_dim,), c.activation, c.dtype, name="q_context")
    self.iaf = bj.Chain([MaskedAutoregressive(tuple(self.iaf_hidden), kind="iaf",
                                              transform=self.iaf_transform, reverse=i % 2 == 1, dtype=c.dtype)
                         for i in range(self.iaf_steps)])

  def encode_mean(self, x: jax.Array, label_B: jax.Array | None = None) -> jax.Array:
    """The IAF steps' image of q(z_0 | x)'s mean: a point of z_T, the space the decoder reads (for
    reconstructions and interpolations; the base mean itself was never decoded in training)."""
    h = self.encoder_features(x, label_B)
    return self.iaf(self.posterior(0, h)[0], True, self.context(h))[0]

  def log_weights(self, x: jax.Array, keys_B: jax.Array, num_samples: int,
                  label_B: jax.Array | None = None) -> dict[str, jax.Array]:
    """K draws z_T ~ q(z_T | x) per example; the same (K, B) terms as HierarchicalVAE.log_weights."""
    c = self.config
    h = self.encoder_features(x, label_B)
    mean, log_std = self.posterior(0, h)
    context = self.context(h)  # (B, context_dim)
    d = c.latent_dims[0]
    eps = jax.vmap(lambda k: jax.random.normal(jax.random.split(k, 1)[0], (num_samples, d)),
                   out_axes=1)(keys_B)
    z0 = mean + jnp.exp(log_std) * eps  # (K, B, d)
    log_q0 = gaussian_log_prob(z0, mean, log_std)
    k, b = z0.shape[:2]
    flat_context = jnp.broadcast_to(context, (k, *context.shape)).reshape(k * b, -1)
    z, log_det = self.iaf(z0.reshape(k * b, d), True, flat_context)  # sampling direction: one pass per step
    z = z.reshape(k, b, d)
    log_q = log_q0 - log_det.reshape(k, b)
    log_p = standard_normal_log_prob(z)
    x_flat = x.reshape(x.shape[0], -1)
    x_rep = jnp.broadcast_to(x_flat, (num_samples, *x_flat.shape))
    return {"log_px": c.decoder.log_prob(self.decode(z, label_B), x_rep), "log_qz1": log_q, "log_pz1": log_p,
            "kl_top_analytic": log_q - log_p}


def make_vae(config: VAEConfig, model_fields) -> HierarchicalVAE:
  """The VAE for config.model: with model.posterior = 'iaf' the IAF posterior (model.iaf_steps,
  iaf_hidden, iaf_context, iaf_transform), otherwise the Gaussian one."""
  kind = model_fields.posterior
  if kind == "gaussian":
    return HierarchicalVAE(config)
  if kind == "iaf":
    if model_fields.iaf_transform not in ("affine", "spline"):
      raise ValueError(f"unknown model.iaf_transform {model_fields.iaf_transform!r}; use affine or spline")
    if len(config.latent_dims) != 1:
      raise ValueError(f"the IAF posterior is for one stochastic layer; got model.latent_dims "
                       f"{config.latent_dims}")
    return IAFPosteriorVAE(config, iaf_steps=model_fields.iaf_steps,
                           iaf_hidden=tuple(model_fields.iaf_hidden), context_dim=model_fields.iaf_context,
                           iaf_transform=model_fields.iaf_transform)
  raise ValueError(f"unknown model.posterior {kind!r}; use gaussian or iaf")
