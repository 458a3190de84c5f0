"""Float64 NumPy references for the diffusion tests, written from each process's definition rather than
from gm_jax's code: alpha^2, sigma^2, the SDE's f and g^2 and -d lambda / dt in closed form, and the exact
denoiser of the Gaussian data N(MU, SIGMA)."""

from __future__ import annotations

import dataclasses

import numpy as np

from gm_jax.diffusion import processes
from tests.diffusion.gaussian import MU, SIGMA


@dataclasses.dataclass
class Coefficients:
  alpha2: np.ndarray
  sigma2: np.ndarray
  f: np.ndarray | None  # drift coefficient of dx = f x dt + g dW
  g2: np.ndarray | None
  neg_log_snr_derivative: np.ndarray  # -d lambda / dt, lambda = log(alpha^2 / sigma^2)

  @property
  def alpha(self):
    return np.sqrt(self.alpha2)

  @property
  def sigma(self):
    return np.sqrt(self.sigma2)

  @property
  def log_snr(self):
    return np.log(self.alpha2 / self.sigma2)


def coefficients(process: processes.Process, t) -> Coefficients:
  t = np.asarray(t, np.float64)
  if isinstance(process, processes.DiscreteDDPM):
    # log abar is linear in t between the grid points i / T; on a segment, d log alpha^2 / dt = T log(1 - beta).
    steps = process.num_steps
    log_alpha2 = np.interp(t * steps, np.arange(steps + 1), process.log_abar)
    segment = np.clip(np.floor(t * steps).astype(int), 0, steps - 1)
    f = 0.5 * steps * np.log1p(-process.betas[segment])
    alpha2 = np.exp(log_alpha2)
    sigma2 = 1.0 - alpha2
    return Coefficients(alpha2, sigma2, f, -2.0 * f, -2.0 * f / sigma2)
  if isinstance(process, (processes.VPSDE, processes.SubVPSDE)):
    beta = process.beta_min + t * (process.beta_max - process.beta_min)
    alpha2 = np.exp(-0.5 * t**2 * (process.beta_max - process.beta_min) - t * process.beta_min)
    if isinstance(process, processes.SubVPSDE):
      # sigma^2 = (1 - alpha^2)^2: g^2 = beta (1 - alpha^4), -lambda' = beta (1 + alpha^2) / (1 - alpha^2).
      return Coefficients(alpha2, (1.0 - alpha2) ** 2, -0.5 * beta, beta * (1.0 - alpha2**2),
                          beta * (1.0 + alpha2) / (1.0 - alpha2))
    return Coefficients(alpha2, 1.0 - alpha2, -0.5 * beta, beta, beta / (1.0 - alpha2))
  if isinstance(process, processes.VESDE):
    log_ratio = np.log(process.sigma_max / process.sigma_min)
    sigma2 = (process.sigma_min * (process.sigma_max / process.sigma_min) ** t) ** 2
    return Coefficients(np.ones_like(t), sigma2, np.zeros_like(t), 2.0 * log_ratio * sigma2,
                        np.full_like(t, 2.0 * log_ratio))
  if isinstance(process, processes.LogSNRProcess):
    # Only the linear schedules of the tests: lambda(t) = lambda(0) + (lambda(1) - lambda(0)) t.
    start, end = float(process.log_snr_fn(0.0)), float(process.log_snr_fn(1.0))
    lam = start + (end - start) * t
    alpha2 = 1.0 / (1.0 + np.exp(-lam))
    return Coefficients(alpha2, 1.0 - alpha2, None, None, np.full_like(t, start - end))
  raise TypeError(type(process))


def exact_eps(process, x, t, mu=MU, sigma_data=SIGMA):
  """E[eps | x_t = x] = sigma (alpha^2 Sigma + sigma^2 I)^-1 (x - alpha mu) for the Gaussian data, per row of x
  (n, 2) at one time t."""
  c = coefficients(process, t)
  cov = c.alpha2 * np.asarray(sigma_data, np.float64) + c.sigma2 * np.eye(2)
  return c.sigma * np.linalg.solve(cov, (np.asarray(x, np.float64) - c.alpha * np.asarray(mu, np.float64)).T).T


def exact_x0(process, x, t, mu=MU, sigma_data=SIGMA):
  c = coefficients(process, t)
  return (np.asarray(x, np.float64) - c.sigma * exact_eps(process, x, t, mu, sigma_data)) / c.alpha
