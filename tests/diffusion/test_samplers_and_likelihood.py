"""Every sampler and the ODE likelihood, driven by the exact score of Gaussian data (no training):
each sampler
against a float64 NumPy reference of its updates, on its own draws and through the exact law of its output."""

import functools
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from gm_jax.diffusion import processes
from gm_jax.diffusion.denoiser import Denoiser
from gm_jax.evaluation.diffusion_likelihood import gaussian_log_prob, ode_log_likelihood
from gm_jax.sampling import diffusion as samplers
from tests.diffusion import reference
from tests.diffusion.gaussian import MU, SIGMA, data, exact_denoiser, exact_field, log_density

N = 4000
DDPM = processes.DiscreteDDPM(processes.linear_betas(1000))
FOUR_STEPS = processes.DiscreteDDPM(np.array([0.05, 0.1, 0.2, 0.4]))
VP, SUBVP, VE = processes.VPSDE(), processes.SubVPSDE(), processes.VESDE(sigma_max=20.0)
VDM = processes.LogSNRProcess(processes.linear_log_snr(13.3, -5.0))
LINEAR, COSINE = processes.LinearInterpolant(), processes.CosineInterpolant()  # flow matching's paths
partial = functools.partial

# name: (process, sampler, expected NFE (None: adaptive), its float64 reference, bound). The bound is on the
# reference's own law, how far its mean and covariance entries lie from N(MU, SIGMA): the discretization
# error of that many steps plus the prior's mismatch with the marginal at t = 1 (VE's prior has mean 0 where
# the marginal has mu; VDM's schedule ends at alpha_1 = 0.08), rounded up from the computed values
# (e.g. 0.043 for 50 DDIM steps on the linear chain, 0.0007 for ancestral sampling with beta_t).
CASES = {
    "ddpm_ancestral_large": (DDPM, partial(samplers.ddpm_ancestral, variance="large"), 1000,
                             lambda: reference.ancestral(DDPM, "large"), 0.001),
    "ddpm_ancestral_small": (DDPM, partial(samplers.ddpm_ancestral, variance="small"), 1000,
                             lambda: reference.ancestral(DDPM, "small"), 0.007),
    "ddim_eta0": (DDPM, partial(samplers.ddim, num_steps=50, eta=0.0), 50,
                  lambda: reference.ddim(DDPM, 50, 0.0), 0.05),
    "ddim_eta1": (DDPM, partial(samplers.ddim, num_steps=200, eta=1.0), 200,
                  lambda: reference.ddim(DDPM, 200, 1.0), 0.03),
    "ddim_vdm": (VDM, partial(samplers.ddim, num_steps=50), 50, lambda: reference.ddim(VDM, 50, 0.0), 0.055),
    # From pure noise at t = 1 (the cosine path used to give NaN there: float32 cos(pi / 2) < 0).
    "ddim_eta0_cosine_interpolant": (COSINE, partial(samplers.ddim, num_steps=50, eta=0.0), 50,
                                     lambda: reference.ddim(COSINE, 50, 0.0), 0.03),
    "ddim_eta1_linear_interpolant": (LINEAR, partial(samplers.ddim, num_steps=50, eta=1.0), 50,
                                     lambda: reference.ddim(LINEAR, 50, 1.0), 0.055),
    "euler_maruyama_vp": (VP, partial(samplers.euler_maruyama, num_steps=500), 501,
                          lambda: reference.euler_maruyama(VP, 500), 0.002),
    "euler_maruyama_subvp": (SUBVP, partial(samplers.euler_maruyama, num_steps=500), 501,
                             lambda: reference.euler_maruyama(SUBVP, 500), 0.002),
    "predictor_corrector_ve": (VE, partial(samplers.predictor_corrector, num_steps=500), 1001,
                               lambda: reference.predictor_corrector(VE, 500), 0.01),
    "ode_euler_vp": (VP, partial(samplers.probability_flow_ode, solver="euler", num_steps=200), 201,
                     lambda: reference.ode_fixed_steps(VP, "euler", 200), 0.004),
    "ode_heun_ve": (VE, partial(samplers.probability_flow_ode, solver="heun", num_steps=50), 101,
                    lambda: reference.ode_fixed_steps(VE, "heun", 50), 0.035),
    "ode_tsit5_vp": (VP, partial(samplers.probability_flow_ode, solver="tsit5"), None,
                     lambda: reference.ode_exact(VP), 0.005),
    "ode_tsit5_linear_interpolant": (LINEAR, partial(samplers.probability_flow_ode, solver="tsit5"), None,
                                     lambda: reference.ode_exact(LINEAR), 1e-3),
    "ode_tsit5_cosine_interpolant": (COSINE, partial(samplers.probability_flow_ode, solver="tsit5"), None,
                                     lambda: reference.ode_exact(COSINE), 1e-3),
    "dpm_solver_pp_2m_vp": (VP, partial(samplers.dpm_solver_pp_2m, num_steps=20), 21,
                            lambda: reference.dpm_solver_pp_2m(VP, 20), 0.025),
    "dpm_solver_pp_2m_ddpm": (DDPM, partial(samplers.dpm_solver_pp_2m, num_steps=20), 21,
                              lambda: reference.dpm_solver_pp_2m(DDPM, 20), 0.02),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_sampler_with_exact_score_reproduces_the_gaussian(name):
  """The samples' mean and covariance match the exact law of the sampler's reference chain within 5 standard
  errors of N = 4000 draws from that law, sqrt(C_ii / N) for a mean and sqrt((C_ii C_jj + C_ij^2) / N) for a
  covariance entry (at most 0.011 for either here; float32 rounding adds about 1e-5); that law lies within
  the sampler's bound of N(MU, SIGMA)."""
  process, sampler, expected_nfe, make_reference, bound = CASES[name]
  x, nfe = jax.jit(lambda k: sampler(exact_field(process), k, (N, 2)))(jax.random.key(0))
  x = np.asarray(x, np.float64)
  mean, cov = reference.law(make_reference())
  var = np.diag(cov)
  mean_error = (x.mean(0) - mean) / np.sqrt(var / N)
  cov_error = (np.cov(x.T) - cov) / np.sqrt((np.outer(var, var) + cov**2) / N)
  assert np.all(np.abs(mean_error) < 5) and np.all(np.abs(cov_error) < 5), (mean_error, cov_error)
  assert np.max(np.abs(mean - MU)) < bound and np.max(np.abs(cov - SIGMA)) < bound, (mean - MU, cov - SIGMA)
  if expected_nfe is None:
    assert 10 < int(nfe) < 2000
  else:
    assert int(nfe) == expected_nfe


# A few steps of every sampler, with every option that changes its update.
STEPS = {
    "ancestral_large": (FOUR_STEPS, partial(samplers.ddpm_ancestral, variance="large"),
                        reference.ancestral(FOUR_STEPS, "large")),
    "ancestral_small": (FOUR_STEPS, partial(samplers.ddpm_ancestral, variance="small"),
                        reference.ancestral(FOUR_STEPS, "small")),
    "ancestral_small_clipped": (FOUR_STEPS, partial(samplers.ddpm_ancestral, variance="small", clip_x0=True),
                                reference.ancestral(FOUR_STEPS, "small", clip_x0=True)),
    "ddim_eta0": (DDPM, partial(samplers.ddim, num_steps=3, eta=0.0), reference.ddim(DDPM, 3, 0.0)),
    "ddim_eta05_clipped": (DDPM, partial(samplers.ddim, num_steps=3, eta=0.5, clip_x0=True),
                           reference.ddim(DDPM, 3, 0.5, clip_x0=True)),
    "ddim_eta1_vdm": (VDM, partial(samplers.ddim, num_steps=3, eta=1.0), reference.ddim(VDM, 3, 1.0)),
    "euler_maruyama_vp": (VP, partial(samplers.euler_maruyama, num_steps=3), reference.euler_maruyama(VP, 3)),
    "euler_maruyama_subvp": (SUBVP, partial(samplers.euler_maruyama, num_steps=3),
                             reference.euler_maruyama(SUBVP, 3)),
    "predictor_corrector_ve": (VE, partial(samplers.predictor_corrector, num_steps=2, snr=0.2,
                                           corrector_steps=2),
                               reference.predictor_corrector(VE, 2, snr=0.2, corrector_steps=2)),
    "predictor_corrector_vp": (VP, partial(samplers.predictor_corrector, num_steps=2, snr=0.2,
                                           corrector_steps=2),
                               reference.predictor_corrector(VP, 2, snr=0.2, corrector_steps=2)),
    "ode_euler_vp": (VP, partial(samplers.probability_flow_ode, solver="euler", num_steps=3),
                     reference.ode_fixed_steps(VP, "euler", 3)),
    "ode_heun_ve": (VE, partial(samplers.probability_flow_ode, solver="heun", num_steps=3),
                    reference.ode_fixed_steps(VE, "heun", 3)),
    "ode_tsit5_vp": (VP, partial(samplers.probability_flow_ode, solver="tsit5"), reference.ode_exact(VP)),
    "ode_tsit5_linear_interpolant": (LINEAR, partial(samplers.probability_flow_ode, solver="tsit5"),
                                     reference.ode_exact(LINEAR)),
    "dpm_solver_pp_2m_vp": (VP, partial(samplers.dpm_solver_pp_2m, num_steps=3),
                            reference.dpm_solver_pp_2m(VP, 3)),
    "dpm_solver_pp_2m_ddpm": (DDPM, partial(samplers.dpm_solver_pp_2m, num_steps=3),
                              reference.dpm_solver_pp_2m(DDPM, 3)),
}


@pytest.mark.parametrize("name", sorted(STEPS))
def test_sampler_steps_equal_the_hand_computed_updates_on_the_same_draws(name):
  """From the prior draw of a fixed key, each update (its mean, its noise coefficient, the step without noise
  at the end) in float64 on the noise the sampler drew: equal up to float32 rounding; the adaptive solver
  matches the ODE's exact solution to its tolerance."""
  process, sampler, ref = STEPS[name]
  shape = (6, 2)
  key = jax.random.key(11)
  x, _ = jax.jit(lambda k: sampler(exact_field(process), k, shape))(key)
  tolerance = 3e-4 if name.startswith("ode_tsit5") else 1e-4
  np.testing.assert_allclose(x, reference.run(ref, key, shape), rtol=tolerance, atol=tolerance)


def _counting(denoiser: Denoiser):
  """The denoiser and a host-side list that gets one entry per (batched) network evaluation."""
  calls = []

  def apply_fn(x_t, t):
    jax.debug.callback(lambda: calls.append(t.shape))
    return denoiser.apply_fn(x_t, t)

  return Denoiser(apply_fn, denoiser.kind, denoiser.process), calls


NFE_CASES = {
    "ddpm_ancestral": (processes.DiscreteDDPM(processes.linear_betas(50)), samplers.ddpm_ancestral),
    "ddim_eta1": (DDPM, functools.partial(samplers.ddim, num_steps=10, eta=1.0)),
    "euler_maruyama": (VP, functools.partial(samplers.euler_maruyama, num_steps=10)),
    "predictor_corrector_2": (VE, functools.partial(samplers.predictor_corrector, num_steps=10,
                                                    corrector_steps=2)),
    "ode_euler": (VP, functools.partial(samplers.probability_flow_ode, solver="euler", num_steps=10)),
    "ode_heun": (VE, functools.partial(samplers.probability_flow_ode, solver="heun", num_steps=10)),
    "ode_tsit5_fixed": (VP, functools.partial(samplers.probability_flow_ode, solver="tsit5", num_steps=5)),
    "ode_tsit5_adaptive": (VP, functools.partial(samplers.probability_flow_ode, solver="tsit5")),
    "ode_dopri5_adaptive": (VE, functools.partial(samplers.probability_flow_ode, solver="dopri5", rtol=1e-3,
                                                  atol=1e-3)),
    "dpm_solver_pp_2m": (VP, functools.partial(samplers.dpm_solver_pp_2m, num_steps=10)),
    "edm_heun": (processes.KarrasProcess(), functools.partial(samplers.edm_heun, num_steps=6)),
    "likelihood_tsit5_exact": (VP, lambda d, k, shape: ode_log_likelihood(d, data(k, shape[0]))),
    "likelihood_dopri5_hutchinson": (VE, lambda d, k, shape: ode_log_likelihood(
        d, data(k, shape[0]), k, exact_trace=False, solver="dopri5", rtol=1e-3, atol=1e-3)),
}


@pytest.mark.parametrize("name", sorted(NFE_CASES))
def test_reported_nfe_counts_every_network_evaluation(name):
  """Fixed-step solvers, the adaptive solvers' first-same-as-last stage and rejected steps, and any
  evaluation the step-size controller makes to choose the first step all count."""
  process, sampler = NFE_CASES[name]
  denoiser, calls = _counting(exact_denoiser(process))
  _, nfe = jax.block_until_ready(jax.jit(lambda k: sampler(denoiser, k, (16, 2)))(jax.random.key(0)))
  jax.effects_barrier()
  assert int(nfe) == len(calls) > 0


def test_ode_samplers_that_stop_before_t_0_return_what_ddim_returns_there():
  """DDIM's last step returns the x0 prediction at the chain's first step t = 1/T; the probability-flow
  ODE and DPM-Solver++ stopped at that time and returned x there, noise of std sigma(1/T) = 0.045 and all,
  3.7 times the width of data of std 0.02 on a 20-step chain. With the exact denoiser all three follow
  the same ODE, so they now end alike (std 0.0054: the x0 prediction at a noise level above the data's
  spread shrinks it)."""
  chain = processes.DiscreteDDPM(processes.linear_betas(20))
  narrow = exact_denoiser(chain, mu=np.zeros(2, np.float32), sigma_data=np.float32(0.02**2) * np.eye(2))
  std = lambda sampler: float(np.std(np.asarray(jax.jit(lambda k: sampler(narrow, k, (N, 2))[0])(
      jax.random.key(0)))))
  ddim = std(partial(samplers.ddim, num_steps=20))
  assert std(partial(samplers.probability_flow_ode, solver="tsit5")) == pytest.approx(ddim, rel=0.05)
  assert std(partial(samplers.dpm_solver_pp_2m, num_steps=10)) == pytest.approx(ddim, rel=0.05)


@pytest.mark.parametrize("process,steps,evaluations", [(VP, 1, 2), (VE, 1, 2), (VP, 3, 4), (LINEAR, 1, 1)])
def test_fixed_step_ode_sampler_evaluates_once_per_euler_step(process, steps, evaluations):
  """Plus once for the x0 prediction where the process ends at t_min > 0. Stepping t0 + k dt, one step
  from 1 ended at 1 + (1e-5 - 1) = 1.0014e-5 in float32, short of t_min = 1e-5, and took a second step."""
  denoiser, calls = _counting(exact_field(process))
  _, nfe = jax.block_until_ready(jax.jit(lambda k: samplers.probability_flow_ode(
      denoiser, k, (8, 2), "euler", steps))(jax.random.key(0)))
  jax.effects_barrier()
  assert int(nfe) == len(calls) == evaluations


def test_ddim_with_eta_1_steps_by_the_posterior_also_into_a_noisy_t_0():
  """With eta = 1 a DDIM step from t to s draws from q(x_s | x_t, x0 = x0_hat), also at the last step into
  t = 0, where a log-SNR schedule (VDM's) leaves sigma(0) > 0. With x0_hat = 0 that posterior is
  N(alpha_ts sigma_s^2 / sigma_t^2 x_t, sigma_ts^2 sigma_s^2 / sigma_t^2), alpha_ts = alpha_t / alpha_s,
  sigma_ts^2 = sigma_t^2 - alpha_ts^2 sigma_s^2 (Kingma et al. 2021, appendix A), so one step from
  x_1 ~ N(0, I) to t = 0 gives a Gaussian whose variance is the squared mean coefficient plus that one."""
  process = processes.LogSNRProcess(processes.linear_log_snr(1.0, -1.0))
  predicts_zero = Denoiser(lambda x_t, t: jnp.zeros_like(x_t), "x0", process)
  x, _ = jax.jit(lambda k: samplers.ddim(predicts_zero, k, (200_000, 2), num_steps=1, eta=1.0))(
      jax.random.key(0))
  sigmoid = lambda v: 1.0 / (1.0 + np.exp(-v))
  alpha2_t, sigma2_t, alpha2_s, sigma2_s = sigmoid(-1.0), sigmoid(1.0), sigmoid(1.0), sigmoid(-1.0)
  alpha2_ts = alpha2_t / alpha2_s
  sigma2_ts = sigma2_t - alpha2_ts * sigma2_s
  expected = alpha2_ts * sigma2_s**2 / sigma2_t**2 + sigma2_ts * sigma2_s / sigma2_t
  # Standard error about 0.2%; a step that takes sigma(0) for 0 draws variance sigma_s^2, 5% lower.
  assert float(np.var(np.asarray(x))) == pytest.approx(expected, rel=0.01)


def test_langevin_corrector_step_size_has_the_alpha_factor_of_song_et_al():
  """Song et al. (2021), Algorithm 5 (VP SDE): the corrector steps x + e s + sqrt(2e) z with
  e = 2 alpha_i (r ||z|| / ||s||)^2, alpha_i = 1 - beta_i the chain's signal kept over the step. One
  step (num_steps = 1: a corrector step at t = 1, then the noise-free predictor step to t_min) from
  x ~ N(0, I) with the score s(x) = -x / v: ||z|| / ||s|| -> v, so e = 2 alpha r^2 v^2, the corrector gives
  variance (1 - e / v)^2 + 2e, and the Euler step x - (f x - g^2 s) dt multiplies x by
  1 - (g^2 / v - beta(1) / 2) dt with f = -beta(1) / 2, g^2 = beta(1). (The x0 prediction at t_min = 1e-5
  that ends the sampler scales x by about 1 + 1e-6.)"""
  beta_min, beta_max, v, r = 0.1, 1.0, 0.5, 1.0
  process = processes.VPSDE(beta_min, beta_max)
  score = Denoiser(lambda x_t, t: -x_t / v, "score", process)
  x, nfe = jax.jit(lambda k: samplers.predictor_corrector(score, k, (100_000, 2), num_steps=1, snr=r))(
      jax.random.key(0))
  t0, dt = process.t_min, 1.0 - process.t_min
  alpha = np.exp(-(beta_min * dt + 0.5 * (beta_max - beta_min) * (1.0 - t0**2)))  # exp(-int_t0^1 beta)
  e = 2.0 * alpha * r**2 * v**2
  beta_1 = beta_max
  expected = (1.0 - (beta_1 / v - beta_1 / 2) * dt) ** 2 * ((1.0 - e / v) ** 2 + 2.0 * e)
  # Standard error about 0.3%; without alpha (0.58 here) e = 0.5 and the variance is 0.25, not 0.19.
  assert float(np.var(np.asarray(x))) == pytest.approx(expected, rel=0.02)
  assert int(nfe) == 3


# A log-SNR schedule that ends as noisy as VP's (VDM's own -5 ends with alpha_1 = 0.08, where the
# N(0, I) prior is not the marginal and the ODE likelihood carries that mismatch). VE's prior is
# N(0, sigma_max^2): a sigma_max far above the data's scale makes it the marginal.
@pytest.mark.parametrize("process", [VP, SUBVP,
                                     processes.LogSNRProcess(processes.linear_log_snr(13.3, -12.0)),
                                     LINEAR, COSINE, processes.VESDE(sigma_max=500.0)],
                         ids=["vp", "subvp", "log_snr", "linear", "cosine", "ve"])
def test_ode_log_likelihood_with_exact_score_is_the_exact_density(process):
  x = data(jax.random.key(1), 64)
  logp, _ = jax.jit(lambda x: ode_log_likelihood(exact_field(process), x))(x)
  exact = log_density(x, process, process.t_min)
  np.testing.assert_allclose(np.asarray(logp), exact, rtol=0.01)


def test_adaptive_ode_likelihood_of_an_example_does_not_depend_on_its_batch():
  """Each example takes its own adaptive steps: the likelihoods of an outlying point and three data points
  solved alone and within a batch of 64 agree within float32 rounding's effect on the step choice, where
  one error norm over the batch moved them by 2e-3 nats at this tolerance."""
  x = np.array(data(jax.random.key(1), 64))
  x[0] = [4.0, -3.0]
  solve = jax.jit(lambda y: ode_log_likelihood(exact_field(VP), y, rtol=1e-3, atol=1e-3))
  alone = np.array([np.asarray(solve(x[i:i + 1])[0])[0] for i in range(4)])
  np.testing.assert_allclose(np.asarray(solve(x)[0])[:4], alone, atol=3e-4)


def test_hutchinson_ode_log_likelihood_is_unbiased():
  probes = 1000
  x = np.repeat(np.asarray(data(jax.random.key(2), 8)), probes, axis=0)
  logp, _ = jax.jit(lambda x, k: ode_log_likelihood(exact_denoiser(VP), x, k, exact_trace=False))(
      x, jax.random.key(3))
  logp = np.asarray(logp).reshape(8, probes)
  error = logp.mean(1) - log_density(x[::probes], VP, VP.t_min)
  standard_error = logp.std(1) / np.sqrt(probes)
  assert np.all(np.abs(error) < 4 * standard_error), (error, standard_error)
  assert np.all(standard_error < 0.05)


@pytest.mark.parametrize("per_example", [False, True])
def test_hutchinson_likelihood_takes_raw_keys_as_typed_ones(per_example):
  x = data(jax.random.key(2), 4)
  typed = jax.random.split(jax.random.key(3), 4) if per_example else jax.random.key(3)
  logp = jax.jit(lambda x, k: ode_log_likelihood(exact_denoiser(VP), x, k, False, "heun", 8)[0])
  np.testing.assert_array_equal(logp(x, typed), logp(x, jax.random.key_data(typed)))


def test_ddim_on_the_linear_path_is_euler_on_the_flow_matching_ode():
  """x_s = alpha_s x0_hat + sigma_s eps_hat equals x_t + (s - t)(eps_hat - x0_hat) when alpha = 1 - t,
  sigma = t: two implementations (DDIM's update, diffrax's Euler on the velocity) of one sampler."""
  shape, key = (64, 2), jax.random.key(5)
  denoiser = exact_field(LINEAR)
  by_ddim, _ = jax.jit(lambda k: samplers.ddim(denoiser, k, shape, num_steps=7))(key)
  x1 = samplers.prior_sample(LINEAR, jax.random.split(key)[0], shape)  # DDIM's prior draw
  velocity = lambda t, x, args: samplers.probability_flow_velocity(denoiser, x, t)
  by_euler, _ = jax.jit(lambda x1: samplers.solve_ode(velocity, x1, 1.0, 0.0, "euler", 7, 0.0, 0.0))(x1)
  np.testing.assert_allclose(by_ddim, by_euler, rtol=1e-5, atol=1e-5)
  assert np.max(np.abs(np.cov(np.asarray(by_ddim).T) - SIGMA)) > 0.01  # 7 steps are not exact: a real check


@pytest.mark.parametrize("sampler", [partial(samplers.euler_maruyama, num_steps=3),
                                     partial(samplers.predictor_corrector, num_steps=3),
                                     partial(samplers.dpm_solver_pp_2m, num_steps=3)])
def test_samplers_that_need_a_finite_log_snr_refuse_a_path_ending_in_pure_noise(sampler):
  with pytest.raises(ValueError, match="needs a finite log-SNR at t = 1.*use the ode or ddim sampler"):
    sampler(exact_field(LINEAR), jax.random.key(0), (2, 2))


def test_time_grids_prior_log_density_and_bad_settings():
  np.testing.assert_allclose(samplers.time_grid(DDPM, 3), [1.0, 0.667, 0.333, 0.0], rtol=1e-6)  # whole steps
  assert len(np.unique(samplers.time_grid(DDPM, DDPM.num_steps))) == DDPM.num_steps + 1
  with pytest.raises(ValueError, match=f"{DDPM.num_steps + 1} steps exceed the {DDPM.num_steps} of the DDPM"):
    samplers.time_grid(DDPM, DDPM.num_steps + 1)  # rounded, its times would repeat
  np.testing.assert_allclose(samplers.time_grid(VP, 4), np.linspace(1.0, VP.t_min, 5), rtol=1e-6)
  x = np.random.default_rng(0).normal(size=(3, 2, 2)) * 5.0
  np.testing.assert_allclose(gaussian_log_prob(jnp.asarray(x, jnp.float32), 20.0),
                             norm.logpdf(x, 0.0, 20.0).reshape(3, -1).sum(-1), rtol=1e-6)
  with pytest.raises(ValueError, match="ancestral sampling needs a discrete DDPM process"):
    samplers.ddpm_ancestral(exact_denoiser(VP), jax.random.key(0), (2, 2))
  with pytest.raises(ValueError, match="unknown ODE solver 'rk4'"):
    samplers.probability_flow_ode(exact_denoiser(VP), jax.random.key(0), (2, 2), solver="rk4", num_steps=3)
  with pytest.raises(ValueError, match="the euler solver runs with fixed steps"):
    samplers.probability_flow_ode(exact_denoiser(VP), jax.random.key(0), (2, 2), solver="euler")
  with pytest.raises(ValueError, match="exact_trace=False draws Hutchinson's probes; pass a key"):
    ode_log_likelihood(exact_denoiser(VP), x, exact_trace=False)


def test_ode_solve_is_accurate_and_a_failed_solve_is_nan_not_a_number_from_where_it_stopped():
  solve = lambda f, t1, tol: jax.jit(lambda y0: samplers.solve_ode(f, y0, 0.0, t1, "tsit5", 0, tol, tol))
  decay, _ = solve(lambda t, y, args: -y, 1.0, 1e-7)(jnp.ones(2))
  np.testing.assert_allclose(decay, np.exp(-1.0), rtol=1e-5)
  # dy/dt = y^2 from y(0) = 1 blows up at t = 1: the adaptive solver cannot reach t = 2 for the first
  # example; the second, from y(0) = 0, stays at 0 in a solve of its own.
  blow_up, _ = solve(lambda t, y, args: y**2, 2.0, 1e-5)(jnp.array([1.0, 0.0]))
  assert np.isnan(blow_up[0]) and blow_up[1] == 0.0


def test_diffrax_is_imported_by_the_first_ode_solve_not_at_start_up():
  """diffrax (with equinox) added about 0.45 s to every process's start-up; only a solve imports it. Heun's
  4 steps of h = 1/4 on dy/dt = -y multiply y by 1 - h + h^2 / 2 each."""
  code = ("import sys; import jax.numpy as jnp; from gm_jax import tasks; "
          "from gm_jax.sampling import diffusion; before = 'diffrax' in sys.modules; "
          "y, nfe = diffusion.solve_ode(lambda t, y, a: -y, jnp.ones(2), 0.0, 1.0, 'heun', 4, 0.0, 0.0); "
          "print(before, 'diffrax' in sys.modules, float(y[0]), int(nfe))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
  out = out.split()
  assert out[:2] == ["False", "True"] and int(out[3]) == 8
  np.testing.assert_allclose(float(out[2]), (1 - 0.25 + 0.25**2 / 2) ** 4, rtol=1e-6)


def test_the_ode_sampler_takes_its_own_solver_or_else_the_likelihoods():
  """eval.sampler_ode_solver solves the ODE sampler's steps; empty, eval.ode_solver (the likelihood's)."""
  import ml_collections

  from gm_jax.tasks import diffusion as diffusion_task

  denoiser, shape, key = exact_field(LINEAR), (64, 2), jax.random.key(6)
  ev = lambda ode, sampler_ode: ml_collections.ConfigDict(dict(
      sampler="ode", sampler_steps=7, ode_solver=ode, sampler_ode_solver=sampler_ode, ode_rtol=1e-5))
  draw = lambda settings: jax.jit(lambda k: diffusion_task.run_sampler(denoiser, k, shape, settings))(key)
  (own, nfe), (inherited, _) = draw(ev("tsit5", "euler")), draw(ev("euler", ""))
  np.testing.assert_array_equal(own, inherited)
  assert nfe == 7  # Euler: one evaluation a step
  assert np.max(np.abs(np.asarray(draw(ev("tsit5", ""))[0]) - np.asarray(own))) > 1e-3
