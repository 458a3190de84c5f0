"""Diffusion objectives against closed forms: the prediction algebra, losses whose gradient vanishes at
the exact denoiser, every loss weighting and loss in float64 at the times it draws, the DDPM bound term by
term, the decoders, the prior KL, and VDM's T -> infinity limit."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special
from scipy.stats import norm

from gm_jax.diffusion import parameterization, processes
from gm_jax.diffusion.denoiser import Denoiser
from gm_jax.objectives import diffusion as objectives
from tests.diffusion import reference
from tests.diffusion.gaussian import MU, SIGMA, data, exact_denoiser, exact_field

DDPM = processes.DiscreteDDPM(processes.linear_betas(1000))
VP = processes.VPSDE()
VE = processes.VESDE(sigma_max=20.0)


@pytest.mark.parametrize("start,end", list(itertools.permutations(parameterization.KINDS, 2)))
def test_parameterizations_round_trip(start, end):
  keys = jax.random.split(jax.random.key(0), 6)
  x_t, pred = jax.random.normal(keys[0], (5, 3)), jax.random.normal(keys[1], (5, 3))
  alpha = jax.random.uniform(keys[2], (5, 1), minval=0.1, maxval=2.0)  # also non-VP (VE: alpha = 1)
  sigma = jax.random.uniform(keys[3], (5, 1), minval=0.1, maxval=2.0)
  d_alpha = -jax.random.uniform(keys[4], (5, 1), minval=0.1, maxval=2.0)
  d_sigma = jax.random.uniform(keys[5], (5, 1), minval=0.1, maxval=2.0)
  c = (alpha, sigma, d_alpha, d_sigma)
  there = parameterization.convert(pred, start, end, x_t, *c)
  back = parameterization.convert(there, end, start, x_t, *c)
  np.testing.assert_allclose(back, pred, rtol=1e-4, atol=1e-4)
  # Each kind is consistent with x_t = alpha x0 + sigma eps, and the velocity is alpha' x0 + sigma' eps.
  x0, eps = parameterization.to_x0_and_eps(start, pred, x_t, *c)
  np.testing.assert_allclose(alpha * x0 + sigma * eps, x_t, rtol=1e-4, atol=1e-4)
  velocity = parameterization.convert(pred, start, "velocity", x_t, *c)
  np.testing.assert_allclose(velocity, d_alpha * x0 + d_sigma * eps, rtol=1e-4, atol=1e-4)


def test_velocity_is_finite_and_exact_where_a_path_reaches_pure_noise_or_data():
  """On the linear path at t = 1 (alpha = 0) and t = 0 (sigma = 0), a velocity converts to x0 and eps
  exactly, where eps and score predictions divide by zero."""
  x0, eps = jnp.array([[0.3, -1.2]]), jnp.array([[0.7, 0.4]])
  path = processes.LinearInterpolant()
  for t in (0.0, 1.0):
    c = [jnp.full((1, 1), f(jnp.float32(t))) for f in (path.alpha, path.sigma, path.d_alpha, path.d_sigma)]
    x_t, velocity = c[0] * x0 + c[1] * eps, eps - x0
    back = parameterization.to_x0_and_eps("velocity", velocity, x_t, *c)
    np.testing.assert_allclose(back[0], x0, rtol=1e-6)
    np.testing.assert_allclose(back[1], eps, rtol=1e-6)
  with pytest.raises(ValueError, match="needs the path's time derivatives"):
    parameterization.convert(x0, "eps", "velocity", x0, 1.0, 1.0)


LOSSES = {
    "ddpm_simple": lambda d, x, k: objectives.denoising_loss(d, x, k, "eps"),
    "ddpm_x0": lambda d, x, k: objectives.denoising_loss(d, x, k, "x0"),
    "vp_v": lambda d, x, k: objectives.denoising_loss(d, x, k, "v"),
    "vp_likelihood_dsm": lambda d, x, k: objectives.denoising_loss(d, x, k, "likelihood"),
    "ve_dsm": lambda d, x, k: objectives.denoising_loss(d, x, k, "eps"),
    "vdm_continuous": lambda d, x, k: objectives.continuous_diffusion_loss(d, x, k),
    "vdm_discrete": lambda d, x, k: objectives.discrete_diffusion_loss(d, x, k, 100),
    "edm": lambda d, x, k: objectives.edm_loss(d, x, k, sigma_data=0.5),
    "flow_matching_linear": objectives.flow_matching_loss,
    "flow_matching_cosine": objectives.flow_matching_loss,
}
PROCESS = {"ddpm_simple": DDPM, "ddpm_x0": DDPM, "vp_v": VP, "vp_likelihood_dsm": VP, "ve_dsm": VE,
           "vdm_continuous": processes.LogSNRProcess(processes.linear_log_snr(10.0, -5.0)),
           "vdm_discrete": processes.LogSNRProcess(processes.linear_log_snr(10.0, -5.0)),
           "edm": processes.KarrasProcess(sigma_min=1e-4, sigma_max=1e3),
           "flow_matching_linear": processes.LinearInterpolant(),
           "flow_matching_cosine": processes.CosineInterpolant()}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_gradient_vanishes_at_the_exact_denoiser(name):
  """eps_hat = E[eps | x_t] minimizes every weighting (and its velocity the flow-matching loss); its family
  here is the Gaussian's exact denoiser with a free mean, so the gradient in that mean is zero at the true
  mean (up to Monte Carlo error)."""
  process, loss = PROCESS[name], LOSSES[name]
  x0 = data(jax.random.key(1), 400_000)

  def mean_loss(mu):
    return jnp.mean(loss(exact_field(process, mu=mu), x0, jax.random.key(2)))

  grad = jax.jit(jax.grad(mean_loss))
  at_optimum = np.linalg.norm(grad(jnp.asarray(MU)))
  away = np.linalg.norm(grad(jnp.asarray(MU) + 0.3))
  assert at_optimum < 0.05 * away, (at_optimum, away)


@pytest.mark.parametrize("process", [processes.LinearInterpolant(), processes.CosineInterpolant()],
                         ids=["linear", "cosine"])
def test_flow_matching_loss_at_the_exact_velocity_is_the_targets_conditional_variance(process):
  """At the exact velocity the loss is E_t tr Cov(alpha' x0 + sigma' eps | x_t):
  with K = alpha^2 Sigma + sigma^2 I and C = alpha alpha' Sigma + sigma sigma' I,
  tr(alpha'^2 Sigma + sigma'^2 I - C K^-1 C) at each t, integrated
  over t ~ U[0, 1] in float64; and a constant error delta in the velocity adds exactly ||delta||^2."""
  sigma_data = np.asarray(SIGMA, np.float64)

  def conditional_variance(t):
    c = reference.coefficients(process, t)
    d_alpha, d_sigma = (float(f(jnp.float32(t))) for f in (process.d_alpha, process.d_sigma))
    cross = c.alpha * d_alpha * sigma_data + c.sigma * d_sigma * np.eye(2)
    k = c.alpha2 * sigma_data + c.sigma2 * np.eye(2)
    return np.trace(d_alpha**2 * sigma_data + d_sigma**2 * np.eye(2) - cross @ np.linalg.solve(k, cross))

  expected = integrate.quad(conditional_variance, 0.0, 1.0)[0]
  x0 = data(jax.random.key(3), 400_000)
  exact = exact_field(process)
  losses = jax.jit(lambda k: objectives.flow_matching_loss(exact, x0, k))(jax.random.key(4))
  standard_error = float(jnp.std(losses)) / np.sqrt(len(losses))
  assert abs(float(jnp.mean(losses)) - expected) < 4 * standard_error, (float(jnp.mean(losses)), expected)
  delta = jnp.array([0.3, -0.2])
  shifted = Denoiser(lambda x_t, t: exact.apply_fn(x_t, t) + delta, "velocity", process)
  excess = objectives.flow_matching_loss(shifted, x0, jax.random.key(4)) - losses
  assert float(jnp.mean(excess)) == pytest.approx(0.13, abs=4 * float(jnp.std(excess)) / np.sqrt(len(excess)))


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


# --- weights, times and every loss in closed form ---------------------------------------------------

WEIGHTED = {"ddpm": DDPM, "vp": VP, "subvp": processes.SubVPSDE(), "ve": VE,
            "vdm": processes.LogSNRProcess(processes.linear_log_snr(10.0, -5.0)),
            "vp_late_start": processes.VPSDE(t_min=0.05)}  # a t_min that matters


def _zero_x0_denoiser(process):
  """Predicts x0 = 0: then eps_hat = x_t / sigma and eps_hat - eps = (alpha / sigma) x0 whatever eps was
  drawn."""
  return Denoiser(lambda x_t, t: jnp.zeros_like(x_t), "x0", process)


@pytest.mark.parametrize("name", sorted(WEIGHTED))
def test_eps_weights_are_the_errors_of_each_prediction(name):
  """w(t) with ||pred_hat - pred||^2 = w ||eps_hat - eps||^2, from the definitions
  x0 = (x_t - sigma eps) / alpha
  and v = alpha eps - sigma x0; 'likelihood' is the score-matching weight g(t)^2 on ||score_hat - score||^2 =
  ||eps_hat - eps||^2 / sigma^2, i.e. -lambda'(t); all in float64 from the process's closed form."""
  process = WEIGHTED[name]
  t = np.array([0.0105, 0.1, 0.37, 0.5, 0.8135, 0.99])  # off DDPM's grid points, where lambda' is defined
  c = reference.coefficients(process, t)
  rng = np.random.default_rng(0)
  x0, eps, delta = rng.normal(size=(3, len(t), 4))
  x_t = c.alpha[:, None] * x0 + c.sigma[:, None] * eps
  eps_hat = eps + delta
  x0_hat = (x_t - c.sigma[:, None] * eps_hat) / c.alpha[:, None]
  v, v_hat = (c.alpha[:, None] * e - c.sigma[:, None] * x for e, x in ((eps, x0), (eps_hat, x0_hat)))
  sq = lambda a: np.sum(a**2, -1)
  expected = {"eps": np.ones_like(t), "x0": sq(x0_hat - x0) / sq(delta), "v": sq(v_hat - v) / sq(delta),
              "likelihood": c.neg_log_snr_derivative}
  if c.g2 is not None:
    np.testing.assert_allclose(expected["likelihood"], c.g2 / c.sigma2, rtol=1e-12)
  for weighting in objectives.WEIGHTINGS:
    got = objectives.eps_weight(weighting, process, jnp.asarray(t, jnp.float32))
    np.testing.assert_allclose(got, expected[weighting], rtol=2e-4, err_msg=weighting)
  with pytest.raises(ValueError, match="unknown diffusion loss weighting 'snr'"):
    objectives.eps_weight("snr", process, jnp.asarray(t))


@pytest.mark.parametrize("antithetic", [False, True])
@pytest.mark.parametrize("name", ["ddpm", "vp"])
def test_sample_times(name, antithetic):
  """Uniform u (antithetic: one uniform shifted by i / B mod 1) mapped to the grid {1..T}/T of a chain, or to
  [t_min, 1]."""
  process = processes.DiscreteDDPM(processes.linear_betas(10)) if name == "ddpm" else VP
  key = jax.random.key(3)
  batch = 8
  if antithetic:
    u = np.mod(float(jax.random.uniform(key, ())) + np.arange(batch) / batch, 1.0)
  else:
    u = np.asarray(jax.random.uniform(key, (batch,)), np.float64)
  expected = (np.floor(u * 10) + 1) / 10 if name == "ddpm" else process.t_min + (1 - process.t_min) * u
  np.testing.assert_allclose(objectives.sample_times(key, batch, process, antithetic), expected, rtol=1e-6)


def _x0_and_times(process, key, batch, antithetic):
  """Data, and the times the losses draw from `key` (the first of its split; pinned by test_sample_times)."""
  x0 = np.random.default_rng(1).normal(size=(batch, 3)) * np.array([1.0, 0.5, 2.0])
  t = np.asarray(objectives.sample_times(jax.random.split(key)[0], batch, process, antithetic), np.float64)
  return x0, t


# Not DDPM's likelihood weighting: lambda' of the piecewise-linear chain is undefined on its grid, where its
# times are drawn.
@pytest.mark.parametrize("name,weighting", [(name, weighting) for name in sorted(WEIGHTED)
                                            for weighting in objectives.WEIGHTINGS
                                            if (name, weighting) != ("ddpm", "likelihood")])
def test_denoising_loss_in_closed_form(name, weighting):
  """For the x0 = 0 predictor, ||eps_hat - eps||^2 = e^lambda ||x0||^2, so w(t) ||eps_hat - eps||^2 is known
  exactly at the drawn t: ||x0||^2 itself for the x0 weighting, (alpha^2 + sigma^2)^2 / sigma^2 ||x0||^2
  for v."""
  process = WEIGHTED[name]
  key = jax.random.key(4)
  x0, t = _x0_and_times(process, key, 16, False)
  c = reference.coefficients(process, t)
  sq = np.sum(x0**2, -1)
  expected = {"eps": c.alpha2 / c.sigma2 * sq, "x0": sq, "v": (c.alpha2 + c.sigma2) ** 2 / c.sigma2 * sq,
              "likelihood": c.neg_log_snr_derivative * c.alpha2 / c.sigma2 * sq}[weighting]
  loss = objectives.denoising_loss(_zero_x0_denoiser(process), jnp.asarray(x0, jnp.float32), key, weighting)
  np.testing.assert_allclose(loss, expected, rtol=2e-3 if name == "ve" else 2e-4)


@pytest.mark.parametrize("antithetic", [False, True])
def test_flow_matching_loss_in_closed_form(antithetic):
  """For the zero velocity the loss is ||alpha'(t) x0 + sigma'(t) eps||^2 at the drawn t (antithetic: the
  batch's times spread as sample_times spreads them) and the drawn eps; on the cosine path alpha' and sigma'
  are -pi/2 sin(pi t / 2) and pi/2 cos(pi t / 2)."""
  process, key = processes.CosineInterpolant(), jax.random.key(6)
  x0, t = _x0_and_times(process, key, 16, antithetic)
  eps = np.asarray(jax.random.normal(jax.random.split(key)[1], x0.shape), np.float64)
  target = -np.pi / 2 * np.sin(np.pi * t / 2)[:, None] * x0 + np.pi / 2 * np.cos(np.pi * t / 2)[:, None] * eps
  zero = Denoiser(lambda x_t, t: jnp.zeros_like(x_t), "velocity", process)
  loss = objectives.flow_matching_loss(zero, jnp.asarray(x0, jnp.float32), key, antithetic=antithetic)
  np.testing.assert_allclose(loss, np.sum(target**2, -1), rtol=1e-4)


@pytest.mark.parametrize("name", ["vp", "ve", "vdm", "vp_late_start"])
def test_continuous_diffusion_loss_in_closed_form(name):
  """Uniform t (antithetic): (1/2)(1 - t_min) (-lambda'(t)) ||eps_hat - eps||^2; uniform in log-SNR:
  (1/2)(lambda(t_min) - lambda(1)) ||eps_hat - eps||^2 at
  lambda = lambda(t_min) + u (lambda(1) - lambda(t_min))."""
  process = WEIGHTED[name]
  key = jax.random.key(5)
  denoiser = _zero_x0_denoiser(process)
  x0, t = _x0_and_times(process, key, 16, True)
  c = reference.coefficients(process, t)
  sq = np.sum(x0**2, -1)
  loss = objectives.continuous_diffusion_loss(denoiser, jnp.asarray(x0, jnp.float32), key)
  expected = 0.5 * (1 - process.t_min) * c.neg_log_snr_derivative * c.alpha2 / c.sigma2 * sq
  np.testing.assert_allclose(loss, expected, rtol=2e-3 if name == "ve" else 2e-4)

  high, low = (float(reference.coefficients(process, s).log_snr) for s in (process.t_min, 1.0))
  u = (t - process.t_min) / (1 - process.t_min)
  lam = high + u * (low - high)
  loss = objectives.continuous_diffusion_loss(denoiser, jnp.asarray(x0, jnp.float32), key,
                                              uniform_in_log_snr=True)
  np.testing.assert_allclose(loss, 0.5 * (high - low) * np.exp(lam) * sq, rtol=2e-3)


@pytest.mark.parametrize("name", ["vdm", "vp", "vp_late_start"])
def test_discrete_diffusion_loss_in_closed_form(name):
  """(T/2)(SNR(s) - SNR(t)) ||x0_hat - x0||^2 at t = i / T, s = max(t - 1/T, t_min), i uniform on 1..T; the
  x0 = 0 predictor's error is ||x0||^2."""
  process = WEIGHTED[name]
  key = jax.random.key(6)
  steps = 20
  x0 = np.random.default_rng(1).normal(size=(16, 3))
  i = np.asarray(jax.random.randint(jax.random.split(key)[0], (16,), 1, steps + 1))
  t = i / steps
  s = np.maximum(t - 1.0 / steps, process.t_min)
  snr = lambda time: np.exp(reference.coefficients(process, time).log_snr)
  expected = 0.5 * steps * (snr(s) - snr(t)) * np.sum(x0**2, -1)
  loss = objectives.discrete_diffusion_loss(_zero_x0_denoiser(process), jnp.asarray(x0, jnp.float32),
                                            key, steps)
  np.testing.assert_allclose(loss, expected, rtol=1e-3)


@pytest.mark.parametrize("name", sorted(WEIGHTED))
def test_gaussian_prior_kl(name):
  """KL(N(alpha_1 x0, sigma_1^2) || N(0, s^2)) per dimension, s = 1 (s = sigma_max for VE), summed."""
  process = WEIGHTED[name]
  x0 = np.random.default_rng(2).normal(size=(4, 3)) * 2.0
  c = reference.coefficients(process, 1.0)
  prior_var = process.sigma_max**2 if name == "ve" else 1.0
  per_dim = np.log(np.sqrt(prior_var / c.sigma2)) + (c.sigma2 + c.alpha2 * x0**2) / (2 * prior_var) - 0.5
  expected = np.sum(per_dim, -1)
  np.testing.assert_allclose(processes.gaussian_prior_kl(jnp.asarray(x0, jnp.float32), process), expected,
                             rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("chain", [processes.DiscreteDDPM(processes.linear_betas(1000)),
                                   processes.DiscreteDDPM(processes.cosine_betas(50)),
                                   processes.DiscreteDDPM(np.array([0.05, 0.1, 0.2, 0.4]))],
                         ids=["linear1000", "cosine50", "four_steps"])
def test_posterior_coefficients_and_reverse_variances(chain):
  """q(x_{i-1} | x_i, x0) by conditioning the joint Gaussian of (x_{i-1}, x_i); the reverse variance is beta_i
  ('large') or the posterior's beta_tilde_i = (1 - abar_{i-1}) / (1 - abar_i) beta_i ('small'), beta_tilde_2
  at i = 1."""
  steps = np.arange(1, chain.num_steps + 1)
  abar = np.exp(chain.log_abar)
  beta = chain.betas
  cov = np.sqrt(1 - beta) * (1 - abar[:-1])  # Cov(x_{i-1}, x_i | x0)
  ci = cov / (1 - abar[1:])
  c0 = np.sqrt(abar[:-1]) - ci * np.sqrt(abar[1:])
  var = (1 - abar[:-1]) - cov**2 / (1 - abar[1:])
  got = objectives.posterior_coefficients(chain, jnp.asarray(steps))
  # float32 1 - abar_i loses about 1e-7 / (1 - abar_i) relatively: 3e-4 at the linear chain's second step.
  for name, value, expected in zip(("c0", "ci", "var"), got, (c0, ci, var)):
    np.testing.assert_allclose(value, expected, rtol=1e-3, atol=1e-9, err_msg=name)
  beta_tilde = (1 - abar[:-1]) / (1 - abar[1:]) * beta
  np.testing.assert_allclose(objectives.reverse_variance(chain, jnp.asarray(steps), "large"), beta, rtol=1e-6)
  small = objectives.reverse_variance(chain, jnp.asarray(steps), "small")
  np.testing.assert_allclose(small, np.concatenate([beta_tilde[1:2], beta_tilde[1:]]), rtol=1e-3)
  with pytest.raises(ValueError, match="unknown reverse variance 'learned'"):
    objectives.reverse_variance(chain, jnp.asarray(steps), "learned")


def _log_gaussian_bin(lower, upper):
  """log(Phi(upper) - Phi(lower)) in float64, stable in both tails."""
  lower_tail = lower + upper <= 0
  hi = np.where(lower_tail, special.log_ndtr(upper), special.log_ndtr(-lower))
  lo = np.where(lower_tail, special.log_ndtr(lower), special.log_ndtr(-upper))
  return hi + np.log1p(-np.exp(lo - hi))


def _discretized_gaussian_log_likelihood(x0, mean, std, levels):
  """Each level owns [x - 1 / (levels - 1), x + 1 / (levels - 1)]; the bins of -1 and 1 reach to -inf and
  +inf."""
  half = 1.0 / (levels - 1)
  lower = np.where(np.isclose(x0, -1.0), -np.inf, (x0 - half - mean) / std)
  upper = np.where(np.isclose(x0, 1.0), np.inf, (x0 + half - mean) / std)
  return np.sum(_log_gaussian_bin(lower, upper).reshape(len(x0), -1), -1)


def test_discretized_gaussian_likelihood_against_the_normal_cdf():
  """Every level under means near, on, beyond the edge of and far from the data, from sharp to flat: the
  normal CDF's mass on each bin, and the levels' probabilities sum to 1 for one mean."""
  levels = 9
  grid = np.linspace(-1.0, 1.0, levels)
  x0 = np.stack([grid] * 5 + [grid[::-1]], 0)
  mean = np.stack([np.full(levels, m) for m in (0.1, -0.95, 0.99, 3.0, -2.5)] + [grid[::-1] + 0.05], 0)
  for std in (1e-3, 0.02, 0.3, 2.0):
    got = objectives.discretized_gaussian_log_likelihood(x0.reshape(-1, 1), mean.reshape(-1, 1), std, levels)
    expected = _discretized_gaussian_log_likelihood(x0.reshape(-1, 1), mean.reshape(-1, 1), std, levels)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.exp(np.asarray(got, np.float64)).reshape(6, levels)[:5].sum(-1), 1.0,
                               atol=1e-5)


def _np_vlb_terms(chain, x0, eps_by_step, variance, decoder, levels, mu):
  """The DDPM bound's terms in float64: the prior KL, KL(q(x_{i-1} | x_i, x0) || p(x_{i-1} | x_i)) for i >= 2
  with p's mean the posterior mean at x0_hat, and -log p(x0 | x1) (discretized or density) for i = 1."""
  abar = np.exp(chain.log_abar)
  beta = chain.betas
  beta_tilde = (1 - abar[:-1]) / (1 - abar[1:]) * beta
  terms = []
  for i in range(1, chain.num_steps + 1):
    x_t = np.sqrt(abar[i]) * x0 + np.sqrt(1 - abar[i]) * eps_by_step[i]
    x0_hat = reference.exact_x0(chain, x_t, i / chain.num_steps, mu=mu)
    q_mean, q_var = _posterior_by_conditioning(chain, i, x0, x_t)
    p_mean, _ = _posterior_by_conditioning(chain, i, x0_hat, x_t)
    p_var = beta[i - 1] if variance == "large" else beta_tilde[max(i, 2) - 1]
    if i == 1:
      std = np.sqrt(p_var)
      if decoder == "gaussian":
        terms.append(-np.sum(norm.logpdf(x0, p_mean, std), -1))
      else:
        terms.append(-_discretized_gaussian_log_likelihood(x0, p_mean, std, levels))
    else:
      terms.append(np.sum(0.5 * (np.log(p_var / q_var) + (q_var + (q_mean - p_mean) ** 2) / p_var - 1.0), -1))
  prior = np.sum(0.5 * (abar[-1] * x0**2 + (1 - abar[-1]) - 1.0 - np.log(1 - abar[-1])), -1)
  return prior, terms


FOUR_STEPS = processes.DiscreteDDPM(np.array([0.05, 0.1, 0.2, 0.4]))


@pytest.mark.parametrize("chain,variance,decoder",
                         [(FOUR_STEPS, "large", "discretized"), (FOUR_STEPS, "small", "gaussian"),
                          (DDPM, "small", "discretized"), (DDPM, "large", "gaussian")],
                         ids=["four_steps-large-discretized", "four_steps-small-gaussian",
                              "linear1000-small-discretized", "linear1000-large-gaussian"])
def test_ddpm_vlb_is_the_prior_kl_plus_every_term(chain, variance, decoder):
  """ddpm_vlb = KL(q(x_T | x0) || N(0, I)) + sum_i L_i, step i's noise drawn from fold_in(key, i); each term
  (ddpm_vlb_term) and the total against float64 closed forms, for a denoiser that is not the exact one: the KL
  between q(x_{i-1} | x_i, x0) and p's Gaussian of mean q's mean at x0_hat and variance
  beta_i or beta_tilde_i, and -log p(x0 | x1) under the discretized or the density decoder."""
  levels = 9
  x0 = np.array([[-1.0, 0.25], [1.0, -0.5], [0.0, 0.75]])  # on the 9-level grid, edges included
  key = jax.random.key(7)
  eps_by_step = {i: np.asarray(jax.random.normal(jax.random.fold_in(key, i), x0.shape), np.float64)
                 for i in range(1, chain.num_steps + 1)}
  mu = MU + 0.2
  denoiser = exact_denoiser(chain, mu=mu)
  nll = objectives.discretized_decoder(levels) if decoder == "discretized" else objectives.gaussian_decoder
  prior, terms = _np_vlb_terms(chain, x0, eps_by_step, variance, decoder, levels, mu)
  x0_32 = jnp.asarray(x0, jnp.float32)
  check = [1, 2, 10, 500, 1000] if chain.num_steps > 4 else range(1, 5)
  term_at = jax.jit(lambda i, eps: objectives.ddpm_vlb_term(denoiser, x0_32, i, eps, variance, nll))
  for i in check:
    term = term_at(jnp.full(3, i), jnp.asarray(eps_by_step[i], jnp.float32))
    np.testing.assert_allclose(term, terms[i - 1], rtol=2e-3, atol=1e-4, err_msg=f"step {i}")
  total = jax.jit(lambda x: objectives.ddpm_vlb(denoiser, x, key, variance, nll))(x0_32)
  # Relative to the terms' magnitude: in float32 each term is good to a few 1e-4 (1 - abar_i at the first
  # steps), and the density decoder's -log p(x0 | x1) is about -7 where the KLs sum to about +8.
  magnitude = prior + np.sum(np.abs(terms), 0)
  np.testing.assert_array_less(np.abs(np.asarray(total) - (prior + np.sum(terms, 0))), 1e-3 * magnitude)


def test_ddpm_vlb_term_of_a_nearly_exact_denoiser():
  """With x0_hat 1e-3 from x0 the late steps' KLs are 0.5 ||c0 (x0 - x0_hat)||^2 / beta_tilde_i, far below
  the means' rounding: they must come from the difference, not from two nearly equal means."""
  x0 = np.random.default_rng(6).uniform(-1, 1, size=(2, 64)).astype(np.float32)
  x0_hat = x0 + (1e-3 * np.random.default_rng(7).normal(size=x0.shape)).astype(np.float32)
  denoiser = Denoiser(lambda x_t, t: jnp.asarray(x0_hat), "x0", DDPM)
  abar = np.cumprod(1 - DDPM.betas.astype(np.float64))
  for i in (200, 500, 1000):
    eps = jax.random.normal(jax.random.key(i), x0.shape)
    term = objectives.ddpm_vlb_term(denoiser, jnp.asarray(x0), jnp.full(2, i), eps, "small",
                                    objectives.gaussian_decoder)
    beta = DDPM.betas[i - 1]
    c0 = np.sqrt(abar[i - 2]) * beta / (1 - abar[i - 1])
    beta_tilde = (1 - abar[i - 2]) * beta / (1 - abar[i - 1])
    expected = 0.5 * np.sum((c0 * (x0.astype(np.float64) - x0_hat)) ** 2, -1) / beta_tilde
    np.testing.assert_allclose(term, expected, rtol=1e-3, err_msg=f"step {i}")


def test_reconstruction_nlls_in_closed_form():
  """VDM's decoder: p(x = k | z0) proportional to N(z0; alpha_0 k, sigma_0^2) over the levels, z0 =
  alpha_0 x0 + sigma_0 eps at t_min; the density decoder: -log N(x0; z0 / alpha_0, sigma_0^2 / alpha_0^2)."""
  levels = 5
  process = processes.LogSNRProcess(processes.linear_log_snr(3.0, -5.0))
  x0 = np.array([[-1.0, 0.5, 0.0], [1.0, -0.5, 0.5]])
  eps = np.random.default_rng(3).normal(size=x0.shape)
  c = reference.coefficients(process, process.t_min)
  z0 = c.alpha * x0 + c.sigma * eps
  grid = np.linspace(-1.0, 1.0, levels)
  log_probs = special.log_softmax(-0.5 * ((z0[..., None] - c.alpha * grid) / c.sigma) ** 2, -1)
  index = np.round((x0 + 1) * (levels - 1) / 2).astype(int)
  expected = -np.take_along_axis(log_probs, index[..., None], -1)[..., 0].sum(-1)
  x0_32, eps_32 = jnp.asarray(x0, jnp.float32), jnp.asarray(eps, jnp.float32)
  got = objectives.vdm_reconstruction_nll(process, x0_32, eps_32, levels)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
  expected = -norm.logpdf(x0, z0 / c.alpha, c.sigma / c.alpha).sum(-1)
  got = objectives.gaussian_reconstruction_nll(process, x0_32, eps_32)
  np.testing.assert_allclose(got, expected, rtol=1e-4)
  # Sub-VP at t_min, sigma_0 / alpha_0 = 1e-6, on points of the toy densities' scale: float32 x0 is off
  # by 1e-7 of itself, ~0.1 sigma_0 / alpha_0, which a subtraction of z_0 / alpha_0 from x0 would show.
  process = processes.SubVPSDE()
  x0 = 2 * np.random.default_rng(4).normal(size=(512, 2)).astype(np.float32)
  eps = np.random.default_rng(5).normal(size=x0.shape).astype(np.float32)
  c = reference.coefficients(process, process.t_min)
  expected = -norm.logpdf(x0.astype(np.float64), x0 + c.sigma / c.alpha * eps, c.sigma / c.alpha).sum(-1)
  got = objectives.gaussian_reconstruction_nll(process, jnp.asarray(x0), jnp.asarray(eps))
  np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("uniform_in_log_snr", [False, True])
def test_continuous_vlb_terms(uniform_in_log_snr):
  """prior + diffusion + reconstruction, the diffusion term from the first half of the key's split and the
  reconstruction noise from the second."""
  process = WEIGHTED["vdm"]
  key = jax.random.key(8)
  diff_key, rec_key = jax.random.split(key)
  x0 = np.array([[-1.0, 0.5, 0.0], [1.0, -0.5, 0.5], [0.0, 0.0, 1.0]])
  x0_32 = jnp.asarray(x0, jnp.float32)
  denoiser = _zero_x0_denoiser(process)
  terms = objectives.continuous_vlb_terms(denoiser, x0_32, key, objectives.gaussian_reconstruction_nll,
                                          uniform_in_log_snr=uniform_in_log_snr)
  assert sorted(terms) == ["diffusion", "prior", "reconstruction"]
  np.testing.assert_allclose(terms["prior"], processes.gaussian_prior_kl(x0_32, process), rtol=1e-6)
  np.testing.assert_allclose(terms["diffusion"], objectives.continuous_diffusion_loss(
      denoiser, x0_32, diff_key, True, uniform_in_log_snr), rtol=1e-6)
  eps = np.asarray(jax.random.normal(rec_key, x0.shape), np.float64)
  c = reference.coefficients(process, process.t_min)
  expected = -norm.logpdf(x0, x0 + c.sigma / c.alpha * eps, c.sigma / c.alpha).sum(-1)
  np.testing.assert_allclose(terms["reconstruction"], expected, rtol=1e-4)
