"""Float64 NumPy references for the diffusion tests, written from each process's and sampler's definition
rather than from gm_jax's code: alpha^2, sigma^2, the SDE's f and g^2 and -d lambda / dt in closed form, the
exact denoiser of the Gaussian data N(MU, SIGMA), and every sampler step by step, both on given draws and
as the exact mean and covariance of its output."""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
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
    with np.errstate(divide="ignore"):
      return np.log(self.alpha2 / self.sigma2)


def coefficients(process: processes.Process, t) -> Coefficients:
  t = np.asarray(t, np.float64)
  if isinstance(process, processes.DiscreteDDPM):
    # log abar is linear in t between the grid points i / T; on a segment,
    # d log alpha^2 / dt = T log(1 - beta).
    steps = process.num_steps
    log_alpha2 = np.interp(t * steps, np.arange(steps + 1), process.log_abar)
    segment = np.clip(np.floor(t * steps).astype(int), 0, steps - 1)
    f = 0.5 * steps * np.log1p(-process.betas[segment])
    alpha2 = np.exp(log_alpha2)
    sigma2 = -np.expm1(log_alpha2)
    with np.errstate(divide="ignore"):  # t = 0: sigma = 0
      return Coefficients(alpha2, sigma2, f, -2.0 * f, -2.0 * f / sigma2)
  if isinstance(process, (processes.VPSDE, processes.SubVPSDE)):
    beta = process.beta_min + t * (process.beta_max - process.beta_min)
    alpha2 = np.exp(-0.5 * t**2 * (process.beta_max - process.beta_min) - t * process.beta_min)
    if isinstance(process, processes.SubVPSDE):
      # sigma^2 = (1 - alpha^2)^2: g^2 = beta (1 - alpha^4), -lambda' = beta (1 + alpha^2) / (1 - alpha^2).
      return Coefficients(alpha2, (1.0 - alpha2) ** 2, -0.5 * beta, beta * (1.0 - alpha2**2),
                          beta * (1.0 + alpha2) / (1.0 - alpha2))
    return Coefficients(alpha2, 1.0 - alpha2, -0.5 * beta, beta, beta / (1.0 - alpha2))
  if isinstance(process, processes.KarrasProcess):  # alpha = 1, sigma = (a + t (b - a))^rho
    a, b, rho = process.sigma_min ** (1 / process.rho), process.sigma_max ** (1 / process.rho), process.rho
    sigma = (a + t * (b - a)) ** rho
    d_sigma = rho * (b - a) * (a + t * (b - a)) ** (rho - 1)
    return Coefficients(np.ones_like(t), sigma**2, np.zeros_like(t), 2 * sigma * d_sigma, 2 * d_sigma / sigma)
  if isinstance(process, processes.VESDE):
    log_ratio = np.log(process.sigma_max / process.sigma_min)
    sigma2 = (process.sigma_min * (process.sigma_max / process.sigma_min) ** t) ** 2
    return Coefficients(np.ones_like(t), sigma2, np.zeros_like(t), 2.0 * log_ratio * sigma2,
                        np.full_like(t, 2.0 * log_ratio))
  if isinstance(process, processes.LinearInterpolant):  # alpha = 1 - t, sigma = t
    with np.errstate(divide="ignore"):
      return Coefficients((1.0 - t) ** 2, t**2, -1.0 / (1.0 - t), 2.0 * t / (1.0 - t), 2.0 / (t * (1.0 - t)))
  if isinstance(process, processes.CosineInterpolant):  # alpha = cos(theta), sigma = sin(theta),
    # theta = pi t / 2
    theta = 0.5 * np.pi * t
    with np.errstate(divide="ignore"):
      return Coefficients(np.cos(theta) ** 2, np.sin(theta) ** 2, -0.5 * np.pi * np.tan(theta),
                          np.pi * np.tan(theta), np.pi / (np.sin(theta) * np.cos(theta)))
  if isinstance(process, processes.LogSNRProcess):
    # Only the linear schedules of the tests: lambda(t) = lambda(0) + (lambda(1) - lambda(0)) t.
    start, end = float(process.log_snr_fn(0.0)), float(process.log_snr_fn(1.0))
    lam = start + (end - start) * t
    alpha2 = 1.0 / (1.0 + np.exp(-lam))
    return Coefficients(alpha2, 1.0 - alpha2, None, None, np.full_like(t, start - end))
  raise TypeError(type(process))


def exact_eps_at(alpha, sigma, x, mu=MU, sigma_data=SIGMA):
  """E[eps | x_t = x] = sigma (alpha^2 Sigma + sigma^2 I)^-1 (x - alpha mu) for the Gaussian data, per row
  of x."""
  cov = alpha**2 * np.asarray(sigma_data, np.float64) + sigma**2 * np.eye(2)
  return sigma * np.linalg.solve(cov, (np.asarray(x, np.float64) - alpha * np.asarray(mu, np.float64)).T).T


def exact_x0_at(alpha, sigma, x, mu=MU, sigma_data=SIGMA):
  """E[x_0 | x_t = x] = mu + alpha Sigma (alpha^2 Sigma + sigma^2 I)^-1 (x - alpha mu): finite at
  alpha = 0."""
  cov = alpha**2 * np.asarray(sigma_data, np.float64) + sigma**2 * np.eye(2)
  centred = np.asarray(x, np.float64) - alpha * np.asarray(mu, np.float64)
  shift = np.asarray(sigma_data, np.float64) @ np.linalg.solve(cov, centred.T)
  return np.asarray(mu, np.float64) + alpha * shift.T


def exact_eps(process, x, t, mu=MU, sigma_data=SIGMA):
  c = coefficients(process, t)
  return exact_eps_at(c.alpha, c.sigma, x, mu, sigma_data)


def exact_x0(process, x, t, mu=MU, sigma_data=SIGMA):
  c = coefficients(process, t)
  return (np.asarray(x, np.float64) - c.sigma * exact_eps(process, x, t, mu, sigma_data)) / c.alpha


# --- the samplers, step by step ------------------------------------------------------------------------
#
# A sampler is its prior draw and a list of steps. Each step maps the state (n, k) and a standard normal draw
# z (n, 2) to the next state, affinely in both (the exact denoiser is affine in x) except for clipping; a
# Langevin step also takes its step size, which the sampler computes from the batch. `noise_key(key)` is the
# key the JAX sampler draws that step's z from (None: the step adds no noise).


@dataclasses.dataclass
class Step:
  apply: Callable
  noise_key: Callable | None = None
  langevin_snr: float | None = None  # a Langevin step: apply(state, z, step_size)
  score: Callable | None = None  # the Langevin step's score(x), affine in x
  langevin_alpha: float = 1.0  # Song et al.'s alpha_i in the step size (1 - beta_i for VP, 1 for VE)


@dataclasses.dataclass
class Sampler:
  prior_std: float
  prior_key: Callable  # the key of the prior draw x_1 ~ N(0, prior_std^2 I)
  steps: list
  state_dim: int = 2  # x, and for DPM-Solver++(2M) the previous x0 prediction too


def _split(key, part):
  return jax.random.split(key)[part]


def ancestral(chain, variance, clip_x0=False, mu=MU):
  """x_{i-1} = c0 x0_hat + ci x_i + sqrt(var_i) z for i = T..1, no noise at i = 1;
  q(x_{i-1} | x_i, x0) = N(c0 x0 +
  ci x_i, beta_tilde_i), var_i = beta_i ('large') or beta_tilde_i ('small', beta_tilde_2 at i = 1)."""
  abar, beta, steps = np.exp(chain.log_abar), chain.betas, chain.num_steps
  beta_tilde = (1 - abar[:-1]) / (1 - abar[1:]) * beta
  out = []
  for i in range(steps, 0, -1):
    c0 = np.sqrt(abar[i - 1]) * beta[i - 1] / (1 - abar[i])
    ci = np.sqrt(1 - beta[i - 1]) * (1 - abar[i - 1]) / (1 - abar[i])
    var = beta[i - 1] if variance == "large" else beta_tilde[max(i, 2) - 1]

    def apply(x, z, i=i, c0=c0, ci=ci, std=np.sqrt(var) if i > 1 else 0.0):
      x0_hat = exact_x0(chain, x, i / steps, mu)
      if clip_x0:
        x0_hat = np.clip(x0_hat, -1.0, 1.0)
      return c0 * x0_hat + ci * x + std * z

    out.append(Step(apply, (lambda key, i=i: jax.random.fold_in(_split(key, 1), i)) if i > 1 else None))
  return Sampler(1.0, lambda key: _split(key, 0), out)


def time_grid(process, num_steps):
  if isinstance(process, processes.DiscreteDDPM):
    return np.round(np.linspace(process.num_steps, 0, num_steps + 1)) / process.num_steps
  return np.linspace(1.0, process.t_min, num_steps + 1)


def ddim(process, num_steps, eta, clip_x0=False, mu=MU):
  """x_s = alpha_s x0_hat + sqrt(sigma_s^2 - c^2) eps_hat + c z, c^2 = eta^2 sigma_s^2 (1 - SNR_t / SNR_s)
  (Song et al.'s sigma_t(eta) in the alpha, sigma notation); c = 0 when sigma_s = 0."""
  times = time_grid(process, num_steps)
  out = []
  for j in range(num_steps):
    ct, cs = coefficients(process, times[j]), coefficients(process, times[j + 1])
    c2 = eta**2 * cs.sigma2 * (1 - np.exp(ct.log_snr - cs.log_snr)) if cs.sigma2 > 0 else 0.0

    def apply(x, z, ct=ct, cs=cs, c2=c2):
      eps_hat = exact_eps_at(ct.alpha, ct.sigma, x, mu)
      x0_hat = exact_x0_at(ct.alpha, ct.sigma, x, mu)  # at a path's pure-noise end alpha = 0
      if clip_x0:
        x0_hat = np.clip(x0_hat, -1.0, 1.0)
        eps_hat = (x - ct.alpha * x0_hat) / ct.sigma
      return cs.alpha * x0_hat + np.sqrt(max(cs.sigma2 - c2, 0.0)) * eps_hat + np.sqrt(c2) * z

    out.append(Step(apply, lambda key, j=j: jax.random.fold_in(_split(key, 1), j)))
  return Sampler(process.prior_std, lambda key: _split(key, 0), out)


def _score(process, t, mu=MU):
  c = coefficients(process, t)
  return lambda x: -exact_eps_at(c.alpha, c.sigma, x, mu) / c.sigma


def predictor_corrector(process, num_steps, snr=0.16, corrector_steps=1, mu=MU):
  """At each t_j of linspace(1, t_min): Langevin steps x + e score + sqrt(2e) z with
  e = 2 alpha_j (snr E||z|| /
  E||score||)^2 (norms averaged over the batch; alpha_j = alpha^2(t_j) / alpha^2(t_{j+1}), Song et al. 2021,
  Algorithm 5), then Euler-Maruyama x - (f x - g^2 score) dt + g sqrt(dt) z (no noise at the last step)."""
  times = np.linspace(1.0, process.t_min, num_steps + 1)
  out = []
  for j in range(num_steps):
    c, dt, score = coefficients(process, times[j]), times[j] - times[j + 1], _score(process, times[j], mu)
    alpha = float(c.alpha2 / coefficients(process, times[j + 1]).alpha2)
    step_key = lambda key, j=j: jax.random.fold_in(_split(key, 1), j)
    for k in range(corrector_steps):
      out.append(Step(lambda x, z, e, score=score: x + e * score(x) + np.sqrt(2 * e) * z,
                      lambda key, step_key=step_key, k=k: jax.random.fold_in(step_key(key), k + 1),
                      snr, score, alpha))

    def predictor(x, z, c=c, dt=dt, score=score, noise=j < num_steps - 1):
      return x - (c.f * x - c.g2 * score(x)) * dt + (np.sqrt(c.g2 * dt) if noise else 0.0) * z

    out.append(Step(predictor, step_key))
  out += _denoised_at_end(process, process.t_min, mu)
  return Sampler(process.prior_std, lambda key: _split(key, 0), out)


def _denoised_at_end(process, t_end, mu=MU, state_dim=2) -> list[Step]:
  """The samplers' last step where they stop at t_end > 0: x -> E[x_0 | x_t_end] (the state's other entries
  kept); none at t_end = 0."""
  if t_end == 0:
    return []
  c = coefficients(process, t_end)
  return [Step(lambda state, z: np.concatenate([exact_x0_at(c.alpha, c.sigma, state[:, :2], mu),
                                                state[:, 2:]], -1))]


def euler_maruyama(process, num_steps, mu=MU):
  return predictor_corrector(process, num_steps, corrector_steps=0, mu=mu)


def _velocity(process, t, mu=MU):
  """The probability-flow ODE's dx/dt = f x - g^2 score / 2."""
  c, score = coefficients(process, t), _score(process, t, mu)
  return lambda x: c.f * x - 0.5 * c.g2 * score(x)


def ode_fixed_steps(process, solver, num_steps, mu=MU):
  """Euler, or Heun's trapezoid, on dx/dt from t = 1 to t_min in equal steps h < 0."""
  h = (process.t_min - 1.0) / num_steps
  out = []
  for k in range(num_steps):
    t = 1.0 + k * h
    v, v_next = _velocity(process, t, mu), _velocity(process, t + h, mu)
    if solver == "euler":
      out.append(Step(lambda x, z, v=v: x + h * v(x)))
    else:
      out.append(Step(lambda x, z, v=v, v_next=v_next: x + 0.5 * h * (v(x) + v_next(x + h * v(x)))))
  return Sampler(process.prior_std, lambda key: key, out + _denoised_at_end(process, process.t_min, mu))


def ode_exact(process, mu=MU, sigma_data=SIGMA):
  """The probability-flow ODE solved exactly, from t = 1 to t_min: with K_t = alpha_t^2 Sigma + sigma_t^2 I
  its solution is x_t = alpha_t mu + K_t^{1/2} K_1^{-1/2} (x_1 - alpha_1 mu), as
  d K^{1/2} / dt = (f + g^2 K^-1 / 2) K^{1/2}."""
  eigval, eigvec = np.linalg.eigh(np.asarray(sigma_data, np.float64))
  c1, c0 = coefficients(process, 1.0), coefficients(process, process.t_min)
  ratio = eigvec @ np.diag(np.sqrt((c0.alpha2 * eigval + c0.sigma2)
                                   / (c1.alpha2 * eigval + c1.sigma2))) @ eigvec.T
  mu = np.asarray(mu, np.float64)
  apply = lambda x, z: c0.alpha * mu + (x - c1.alpha * mu) @ ratio.T
  steps = [Step(apply)] + _denoised_at_end(process, process.t_min, mu)
  return Sampler(process.prior_std, lambda key: key, steps)


def dpm_solver_pp_2m(process, num_steps, mu=MU):
  """DPM-Solver++(2M) for a variance-preserving process, on log-SNRs uniform from lambda(1) to lambda(t_min)
  (t_min = 1e-5 if 0): with h_j = (lambda_{j+1} - lambda_j) / 2 and D_j = x0_hat at lambda_j (then
  (1 + 1/2r) D_j - (1/2r) D_{j-1}, r = h_{j-1} / h_j), x_{j+1} = (sigma_{j+1} / sigma_j) x_j - alpha_{j+1}
  (e^{-h_j} - 1) D_j. The state carries the previous D."""
  end = process.t_min if process.t_min > 0 else 1e-5
  lam = np.linspace(coefficients(process, 1.0).log_snr, coefficients(process, end).log_snr, num_steps + 1)
  alpha, sigma = np.sqrt(1 / (1 + np.exp(-lam))), np.sqrt(1 / (1 + np.exp(lam)))
  out = []
  for j in range(num_steps):
    h = 0.5 * (lam[j + 1] - lam[j])
    r = 0.5 * (lam[j] - lam[j - 1]) / h if j > 0 else None

    def apply(state, z, j=j, h=h, r=r):
      x, prev = state[:, :2], state[:, 2:]
      x0_hat = (x - sigma[j] * exact_eps_at(alpha[j], sigma[j], x, mu)) / alpha[j]
      d = x0_hat if j == 0 else (1 + 0.5 / r) * x0_hat - (0.5 / r) * prev
      return np.concatenate([sigma[j + 1] / sigma[j] * x - alpha[j + 1] * np.expm1(-h) * d, x0_hat], -1)

    out.append(Step(apply))
  return Sampler(process.prior_std, lambda key: key, out + _denoised_at_end(process, end, mu, 4), state_dim=4)


def run(sampler: Sampler, key, shape):
  """The sampler on the JAX sampler's own draws: the prior draw and each step's noise from the same keys."""
  x = sampler.prior_std * np.asarray(jax.random.normal(sampler.prior_key(key), shape), np.float64)
  state = np.concatenate([x, np.zeros((shape[0], sampler.state_dim - 2))], -1)
  mean_norm = lambda a: np.mean(np.sqrt(np.sum(a**2, -1)))
  for step in sampler.steps:
    z = np.zeros(shape) if step.noise_key is None else np.asarray(
        jax.random.normal(step.noise_key(key), shape), np.float64)
    if step.langevin_snr is not None:
      e = 2 * step.langevin_alpha * (step.langevin_snr * mean_norm(z)
                                     / max(mean_norm(step.score(state)), 1e-12)) ** 2
      state = step.apply(state, z, e)
    else:
      state = step.apply(state, z)
  return state[:, :2]


def _expected_norm(mean, cov, nodes=40):
  """E||y|| for y ~ N(mean, cov) in 2-D, by Gauss-Hermite quadrature."""
  u, w = np.polynomial.hermite_e.hermegauss(nodes)
  w = w / w.sum()
  grid = np.stack(np.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
  weights = np.outer(w, w).reshape(-1)
  y = mean + grid @ np.linalg.cholesky(cov + 1e-300 * np.eye(2)).T
  return float(weights @ np.sqrt(np.sum(y**2, -1)))


def law(sampler: Sampler):
  """Mean and covariance of the sampler's output, propagated exactly through its affine steps
  (a Langevin step's size from the expected norms, which the batch averages estimate)."""
  k = sampler.state_dim
  mean, cov = np.zeros(k), np.zeros((k, k))
  cov[:2, :2] = sampler.prior_std**2 * np.eye(2)
  for step in sampler.steps:
    extra = ()
    if step.langevin_snr is not None:
      offset = step.score(np.zeros((1, 2)))[0]
      jac = step.score(np.eye(2)) - offset  # row i: score(e_i) - score(0)
      score_mean, score_cov = jac.T @ mean + offset, jac.T @ cov @ jac
      extra = (2 * step.langevin_alpha * (step.langevin_snr * np.sqrt(np.pi / 2)
                                          / _expected_norm(score_mean, score_cov)) ** 2,)
    offset = step.apply(np.zeros((1, k)), np.zeros((1, 2)), *extra)[0]
    along_state = (step.apply(np.eye(k), np.zeros((k, 2)), *extra) - offset).T
    along_noise = (step.apply(np.zeros((2, k)), np.eye(2), *extra) - offset).T
    mean = along_state @ mean + offset
    cov = along_state @ cov @ along_state.T + along_noise @ along_noise.T
  return mean[:2], cov[:2, :2]
