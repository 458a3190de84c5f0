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


def exact_denoiser(process: Process, mu=MU, sigma_data=SIGMA, kind: str = "eps") -> Denoiser:
  """With K = alpha^2 Sigma + sigma^2 I: eps_hat = E[eps | x_t] = sigma K^{-1} (x_t - alpha mu) (kind 'eps'),
  or the velocity alpha' E[x_0 | x_t] + sigma' eps_hat with E[x_0 | x_t] =
  mu + alpha Sigma K^{-1} (x_t - alpha mu) (kind 'velocity', finite also where alpha = 0 or sigma = 0)."""
  mu, sigma_data = jnp.asarray(mu), jnp.asarray(sigma_data)

  def whitened(x_t, t):  # K^{-1} (x_t - alpha mu)
    cov = marginal_cov(process, t, sigma_data)
    return jnp.linalg.solve(cov, (x_t - process.alpha(t)[:, None] * mu)[..., None])[..., 0]

  def eps_hat(x_t, t):
    return process.sigma(t)[:, None] * whitened(x_t, t)

  def velocity(x_t, t):
    w = whitened(x_t, t)
    x0_hat = mu + process.alpha(t)[:, None] * w @ sigma_data.T
    return process.d_alpha(t)[:, None] * x0_hat + process.d_sigma(t)[:, None] * process.sigma(t)[:, None] * w

  if kind not in ("eps", "velocity"):
    raise ValueError(kind)
  return Denoiser(eps_hat if kind == "eps" else velocity, kind, process)


def exact_field(process: Process, mu=MU, sigma_data=SIGMA) -> Denoiser:
  """The exact denoiser in the form a process can use at both ends: a velocity for a path that reaches pure
  noise, else an eps prediction."""
  return exact_denoiser(process, mu, sigma_data, "velocity" if process.ends_in_pure_noise else "eps")


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
