"""Diffusion objectives against closed forms: the prediction algebra, losses whose gradient vanishes at
the exact denoiser, the VLB's KL terms, the discretized decoder, and VDM's T -> infinity limit."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.diffusion import parameterization, processes
from gm_jax.objectives import diffusion as objectives
from tests.diffusion.gaussian import MU, data, exact_denoiser

DDPM = processes.DiscreteDDPM(processes.linear_betas(1000))
VP = processes.VPSDE()
VE = processes.VESDE(sigma_max=20.0)


@pytest.mark.parametrize("start,end", list(itertools.permutations(parameterization.KINDS, 2)))
def test_parameterizations_round_trip(start, end):
  keys = jax.random.split(jax.random.key(0), 4)
  x_t, pred = jax.random.normal(keys[0], (5, 3)), jax.random.normal(keys[1], (5, 3))
  alpha = jax.random.uniform(keys[2], (5, 1), minval=0.1, maxval=2.0)  # also non-VP (VE: alpha = 1)
  sigma = jax.random.uniform(keys[3], (5, 1), minval=0.1, maxval=2.0)
  there = parameterization.convert(pred, start, end, x_t, alpha, sigma)
  back = parameterization.convert(there, end, start, x_t, alpha, sigma)
  np.testing.assert_allclose(back, pred, rtol=1e-4, atol=1e-4)
  # Each kind is consistent with x_t = alpha x0 + sigma eps.
  x0, eps = parameterization.to_x0_and_eps(start, pred, x_t, alpha, sigma)
  np.testing.assert_allclose(alpha * x0 + sigma * eps, x_t, rtol=1e-4, atol=1e-4)


LOSSES = {
    "ddpm_simple": lambda d, x, k: objectives.denoising_loss(d, x, k, "eps"),
    "ddpm_x0": lambda d, x, k: objectives.denoising_loss(d, x, k, "x0"),
    "vp_v": lambda d, x, k: objectives.denoising_loss(d, x, k, "v"),
    "vp_likelihood_dsm": lambda d, x, k: objectives.denoising_loss(d, x, k, "likelihood"),
    "ve_dsm": lambda d, x, k: objectives.denoising_loss(d, x, k, "eps"),
    "vdm_continuous": lambda d, x, k: objectives.continuous_diffusion_loss(d, x, k),
    "vdm_discrete": lambda d, x, k: objectives.discrete_diffusion_loss(d, x, k, 100),
}
PROCESS = {"ddpm_simple": DDPM, "ddpm_x0": DDPM, "vp_v": VP, "vp_likelihood_dsm": VP, "ve_dsm": VE,
           "vdm_continuous": processes.LogSNRProcess(processes.linear_log_snr(10.0, -5.0)),
           "vdm_discrete": processes.LogSNRProcess(processes.linear_log_snr(10.0, -5.0))}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_gradient_vanishes_at_the_exact_denoiser(name):
  """eps_hat = E[eps | x_t] minimizes every weighting; its family here is the Gaussian's exact denoiser
  with a free mean, so the gradient in that mean is zero at the true mean (up to Monte Carlo error)."""
  process, loss = PROCESS[name], LOSSES[name]
  x0 = data(jax.random.key(1), 400_000)

  def mean_loss(mu):
    return jnp.mean(loss(exact_denoiser(process, mu=mu), x0, jax.random.key(2)))

  grad = jax.jit(jax.grad(mean_loss))
  at_optimum = np.linalg.norm(grad(jnp.asarray(MU)))
  away = np.linalg.norm(grad(jnp.asarray(MU) + 0.3))
  assert at_optimum < 0.05 * away, (at_optimum, away)


def _posterior_by_conditioning(chain, i, x0, x_t):
  """q(x_{i-1} | x_i, x_0) from the joint Gaussian of (x_{i-1}, x_i) given x_0."""
  abar = np.exp(chain.log_abar)
  beta = chain.betas[i - 1]
  var_prev, var_t = 1 - abar[i - 1], 1 - abar[i]
  cov = np.sqrt(1 - beta) * var_prev
  mean = np.sqrt(abar[i - 1]) * x0 + cov / var_t * (x_t - np.sqrt(abar[i]) * x0)
  return mean, var_prev - cov**2 / var_t


@pytest.mark.parametrize("schedule", [processes.linear_betas, processes.cosine_betas])
def test_posterior_coefficients_match_a_float64_reference(schedule):
  """q(x_{i-1} | x_i, x_0) = N(c0 x_0 + ci x_i, var) from the float64 betas: c0 = sqrt(abar_{i-1}) beta_i /
  (1 - abar_i) (exactly 1 at i = 1), ci = sqrt(1 - beta_i) (1 - abar_{i-1}) / (1 - abar_i) and
  var = (1 - abar_{i-1}) beta_i / (1 - abar_i). 1 - abar_i taken by subtraction in float32, where abar_i is
  close to 1, is off by up to 3e-4 (relative), and a chain of 1000 posterior means drifts by 1e-4."""
  betas = schedule(1000)
  chain = processes.DiscreteDDPM(betas)
  abar = np.cumprod(1.0 - betas)
  abar_prev = np.concatenate([[1.0], abar[:-1]])
  expected = (np.sqrt(abar_prev) * betas / (1.0 - abar),
              np.sqrt(1.0 - betas) * (1.0 - abar_prev) / (1.0 - abar),
              (1.0 - abar_prev) * betas / (1.0 - abar))
  c0, ci, var = objectives.posterior_coefficients(chain, jnp.arange(1, 1001))
  assert float(c0[0]) == pytest.approx(1.0, abs=1e-6)
  for name, got, want in zip(("c0", "ci", "var"), (c0, ci, var), expected):
    np.testing.assert_allclose(np.asarray(got), want, rtol=2e-5, atol=1e-12, err_msg=name)
  # The chain of posterior means x_{i-1} = c0_i x_0 + ci_i x_i from x_1000 = 0.3 with x_0 = 0.7.
  x32 = jax.lax.fori_loop(0, 1000, lambda k, x: c0[999 - k] * 0.7 + ci[999 - k] * x, jnp.float32(0.3))
  x64 = 0.3
  for i in range(999, -1, -1):
    x64 = expected[0][i] * 0.7 + expected[1][i] * x64
  assert abs(float(x32) - x64) < 1e-5


@pytest.mark.parametrize("variance", ["large", "small"])
@pytest.mark.parametrize("i", [2, 10, 500, 1000])
def test_vlb_kl_term_equals_the_closed_form_gaussian_kl(i, variance):
  chain = DDPM
  x0 = np.array([[0.3, -0.7]], np.float32)
  eps = np.array([[0.5, 1.2]], np.float32)
  denoiser = exact_denoiser(chain, mu=MU + 0.2)  # any network; a wrong one makes the KL non-zero
  term = float(objectives.ddpm_vlb_term(denoiser, jnp.asarray(x0), jnp.array([i]), jnp.asarray(eps), variance,
                                          objectives.discretized_decoder(256))[0])

  x_t = np.sqrt(np.exp(chain.log_abar[i])) * x0 + np.sqrt(1 - np.exp(chain.log_abar[i])) * eps
  x0_hat = np.asarray(denoiser.x0_and_eps(jnp.asarray(x_t, jnp.float32), jnp.array([i / 1000.0]))[0])
  q_mean, q_var = _posterior_by_conditioning(chain, i, x0, x_t)
  p_mean, _ = _posterior_by_conditioning(chain, i, x0_hat, x_t)  # the model's mean: x0 replaced by x0_hat
  p_var = chain.betas[i - 1] if variance == "large" else _posterior_by_conditioning(chain, i, x0, x_t)[1]
  d = x0.size
  expected = 0.5 * (d * np.log(p_var / q_var) + (d * q_var + np.sum((q_mean - p_mean) ** 2)) / p_var - d)
  assert term == pytest.approx(expected, rel=2e-3, abs=1e-5)


def test_discretized_gaussian_decoder_is_a_distribution_over_the_levels():
  levels = 17
  grid = jnp.linspace(-1.0, 1.0, levels)[:, None]
  for mean, std in [(0.1, 0.05), (-0.95, 0.3), (0.99, 1e-3), (3.0, 0.5)]:
    log_p = objectives.discretized_gaussian_log_likelihood(grid, jnp.full_like(grid, mean), std, levels)
    assert float(jnp.sum(jnp.exp(log_p))) == pytest.approx(1.0, abs=1e-4)


def test_vdm_decoder_is_a_distribution_over_the_levels():
  levels = 5
  grid = jnp.linspace(-1.0, 1.0, levels)[:, None]
  process = processes.LogSNRProcess(processes.linear_log_snr(3.0, -5.0))
  eps = jnp.full_like(grid, 0.4)  # one z_0 for every candidate x: z_0 = alpha x_true + sigma eps
  z0 = process.alpha(0.0) * 0.5 + process.sigma(0.0) * 0.4
  eps_each = (z0 - process.alpha(0.0) * grid) / process.sigma(0.0)
  nll = objectives.vdm_reconstruction_nll(process, grid, eps_each, levels)
  assert float(jnp.sum(jnp.exp(-nll))) == pytest.approx(1.0, abs=1e-5)
  del eps


def test_vdm_discrete_time_loss_approaches_the_continuous_one():
  process = processes.LogSNRProcess(processes.linear_log_snr(10.0, -5.0))
  denoiser = exact_denoiser(process)
  x0 = data(jax.random.key(3), 200_000)
  continuous = float(jnp.mean(objectives.continuous_diffusion_loss(denoiser, x0, jax.random.key(4))))
  gaps = {}
  for steps in (2, 10, 100, 1000):
    discrete = float(jnp.mean(objectives.discrete_diffusion_loss(denoiser, x0, jax.random.key(5), steps)))
    gaps[steps] = abs(discrete - continuous) / continuous
  # 200k examples estimate each loss to about 0.5%.
  assert gaps[1000] < 0.02 and gaps[100] < gaps[10] < gaps[2], gaps


def _expected_diffusion_loss(process, num=20_001):
  """(1/2) int m(t(lambda)) d lambda for the exact Gaussian denoiser, m = E||eps - E[eps|x_t]||^2 =
  tr(I - sigma^2 (alpha^2 Sigma + sigma^2 I)^{-1}), by the trapezoid rule on a log-SNR grid."""
  from tests.diffusion.gaussian import marginal_cov

  high, low = float(process.log_snr(process.t_min)), float(process.log_snr(1.0))
  lam = np.linspace(low, high, num, dtype=np.float32)
  t = process.time_at_log_snr(jnp.asarray(lam))
  cov = marginal_cov(process, t)
  m = 2.0 - process.sigma2(t) * jnp.trace(jnp.linalg.inv(cov), axis1=1, axis2=2)
  return 0.5 * float(np.trapezoid(np.asarray(m), lam))


@pytest.mark.parametrize("process", [VP, processes.SubVPSDE(), VE], ids=["vp", "subvp", "ve"])
def test_diffusion_loss_uniform_in_log_snr_is_the_expected_integral(process):
  x0 = data(jax.random.key(6), 100_000)
  estimate = objectives.continuous_diffusion_loss(exact_denoiser(process), x0, jax.random.key(7),
                                                  antithetic=True, uniform_in_log_snr=True)
  assert float(jnp.mean(estimate)) == pytest.approx(_expected_diffusion_loss(process), rel=0.01)
