"""A Gaussian mixture with full covariances: the maximum-likelihood sanity baseline for the trainer."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp


class GaussianMixture(nn.Module):
  """p(x) = sum_k pi_k N(x; mu_k, L_k L_k^T), with L_k lower triangular with a positive diagonal.

  `__call__(x_ND)` returns log p(x) per row; `sample(key, n)` draws n points.
  """

  num_components: int
  dim: int

  def setup(self):
    k, d = self.num_components, self.dim
    self.logits_K = self.param("logits", nn.initializers.zeros, (k,))
    self.means_KD = self.param("means", nn.initializers.normal(1.0), (k, d))
    # Unconstrained lower-triangular factor; the diagonal goes through softplus.
    self.raw_scale_KDD = self.param("raw_scale", nn.initializers.zeros, (k, d, d))

  def scale_tril(self) -> jax.Array:
    raw = jnp.tril(self.raw_scale_KDD, -1)
    diag = jax.nn.softplus(jnp.diagonal(self.raw_scale_KDD, axis1=-2, axis2=-1)) + 1e-6
    return raw + jax.vmap(jnp.diag)(diag)

  def __call__(self, x_ND: jax.Array) -> jax.Array:
    L_KDD = self.scale_tril()
    diff_NKD = x_ND[:, None, :] - self.means_KD[None]
    # Solve L z = (x - mu) for every component: z = L^{-1} (x - mu).
    z_KDN = jax.scipy.linalg.solve_triangular(L_KDD, jnp.swapaxes(diff_NKD, 0, 1).transpose(0, 2, 1),
                                              lower=True)
    mahalanobis_NK = jnp.sum(z_KDN**2, axis=1).T
    log_det_K = jnp.sum(jnp.log(jnp.diagonal(L_KDD, axis1=-2, axis2=-1)), axis=-1)
    log_normal_NK = -0.5 * mahalanobis_NK - log_det_K - 0.5 * self.dim * math.log(2 * math.pi)
    return logsumexp(log_normal_NK + jax.nn.log_softmax(self.logits_K), axis=-1)

  def sample(self, key: jax.Array, n: int) -> jax.Array:
    k_comp, k_noise = jax.random.split(key)
    comp_N = jax.random.categorical(k_comp, self.logits_K, shape=(n,))
    eps_ND = jax.random.normal(k_noise, (n, self.dim))
    return self.means_KD[comp_N] + jnp.einsum("nij,nj->ni", self.scale_tril()[comp_N], eps_ND)


def kmeans_plus_plus(key: jax.Array, x_ND: jax.Array, k: int) -> jax.Array:
  """k-means++ seeding: each new centre is drawn with probability proportional to its squared distance
  from the nearest chosen centre. Returns (k, D) centres taken from x."""
  n = x_ND.shape[0]
  first = x_ND[jax.random.randint(jax.random.fold_in(key, 0), (), 0, n)]
  centres = jnp.zeros((k, x_ND.shape[1]), x_ND.dtype).at[0].set(first)
  min_sq_N = jnp.sum((x_ND - first) ** 2, axis=-1)

  def body(i, carry):
    centres, min_sq_N = carry
    idx = jax.random.categorical(jax.random.fold_in(key, i), jnp.log(min_sq_N + 1e-30))
    centre = x_ND[idx]
    return centres.at[i].set(centre), jnp.minimum(min_sq_N, jnp.sum((x_ND - centre) ** 2, axis=-1))

  centres, _ = jax.lax.fori_loop(1, k, body, (centres, min_sq_N))
  return centres


def init_from_data(model: GaussianMixture, key: jax.Array, x_ND: jax.Array) -> dict:
  """Means from k-means++ on x; isotropic scales of the data's spread divided by K^(1/D)."""
  variables = model.init(key, x_ND[:1])
  means = kmeans_plus_plus(key, x_ND, model.num_components)
  std = jnp.mean(jnp.std(x_ND, axis=0)) / model.num_components ** (1.0 / model.dim)
  raw_diag = jnp.log(jnp.expm1(std))  # inverse softplus
  raw_scale = jnp.broadcast_to(jnp.eye(model.dim) * raw_diag, (model.num_components, model.dim, model.dim))
  params = dict(variables["params"], means=means, raw_scale=raw_scale)
  return {"params": params}
