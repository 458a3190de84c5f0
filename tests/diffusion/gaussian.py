"""Gaussian data N(mu, Sigma): every noisy marginal x_t ~ N(alpha mu, alpha^2 Sigma + sigma^2 I) and its
score are known in closed form, so samplers, losses and likelihoods can be checked without training."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from gm_jax.diffusion.denoiser import Denoiser
from gm_jax.diffusion.processes import Process, expand

MU = np.array([1.0, -0.5], np.float32)
SIGMA = np.array([[0.5, 0.2], [0.2, 0.3]], np.float32)


def marginal_cov(process: Process, t_B, sigma_data=SIGMA):
  a2 = process.alpha(t_B)[:, None, None] ** 2
  s2 = process.sigma2(t_B)[:, None, None]
  return a2 * jnp.asarray(sigma_data) + s2 * jnp.eye(sigma_data.shape[0])


def exact_denoiser(process: Process, mu=MU, sigma_data=SIGMA) -> Denoiser:
  """eps_hat = E[eps | x_t] = sigma (alpha^2 Sigma + sigma^2 I)^{-1} (x_t - alpha mu)."""
  mu = jnp.asarray(mu)

  def eps_hat(x_t, t):
    cov = marginal_cov(process, t, sigma_data)
    centred = x_t - process.alpha(t)[:, None] * mu
    return process.sigma(t)[:, None] * jnp.linalg.solve(cov, centred[..., None])[..., 0]

  return Denoiser(eps_hat, "eps", process)


def data(key, n):
  import jax

  chol = np.linalg.cholesky(SIGMA)
  return jnp.asarray(MU) + jax.random.normal(key, (n, 2)) @ jnp.asarray(chol).T


def log_density(x, process: Process, t: float):
  """log N(x; alpha_t mu, alpha_t^2 Sigma + sigma_t^2 I)."""
  cov = np.asarray(marginal_cov(process, jnp.full((1,), t)))[0]
  diff = np.asarray(x) - np.asarray(process.alpha(t)) * MU
  inv = np.linalg.inv(cov)
  return -0.5 * np.einsum("bi,ij,bj->b", diff, inv, diff) - 0.5 * np.log(np.linalg.det(2 * np.pi * cov))


def isotropic_denoiser(process: Process, mean: float, var: float) -> Denoiser:
  """The exact denoiser of data N(mean, var I) of any shape: eps_hat = sigma (x_t - alpha mean) /
  (alpha^2 var + sigma^2)."""

  def eps_hat(x_t, t):
    alpha, sigma = (expand(v, x_t) for v in (process.alpha(t), process.sigma(t)))
    return sigma * (x_t - alpha * mean) / (alpha**2 * var + sigma**2)

  return Denoiser(eps_hat, "eps", process)
