"""EDM (Karras et al. 2022) against closed forms: the preconditioning's unit variances, the loss at the
exact denoiser, and the Heun sampler step by step, at its order, and with churn, on Gaussian data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from gm_jax.diffusion import preconditioning, processes
from gm_jax.objectives import diffusion as objectives
from gm_jax.sampling import diffusion as samplers
from tests.diffusion.gaussian import MU, SIGMA, data, exact_denoiser
from tests.diffusion.recording import TimeRecordingNetwork

KARRAS = processes.KarrasProcess(sigma_min=0.002, sigma_max=20.0)
SIGMA_DATA = 0.5


@pytest.mark.parametrize("noise_level", [0.002, 0.1, 0.5, 3.0, 80.0])
def test_preconditioning_gives_the_network_unit_variance_inputs_and_targets(noise_level):
  """x = x0 + s n with x0 of standard deviation sd: c_in x and the target (x0 - c_skip x) / c_out both
  have variance 1 (c_in^2 (sd^2 + s^2) and ((1 - c_skip)^2 sd^2 + c_skip^2 s^2) / c_out^2, exactly)."""
  rng = np.random.default_rng(0)
  x0 = SIGMA_DATA * rng.standard_normal(400_000)
  x = x0 + noise_level * rng.standard_normal(400_000)
  c_skip, c_out, c_in, c_noise = (float(c) for c in preconditioning.coefficients(noise_level, SIGMA_DATA))
  assert np.var(c_in * x) == pytest.approx(1.0, abs=0.01)
  assert np.var((x0 - c_skip * x) / c_out) == pytest.approx(1.0, abs=0.01)
  assert c_noise == pytest.approx(np.log(noise_level) / 4, rel=1e-6)
  # The loss weight undoes c_out: lambda ||D - x0||^2 = ||F - target||^2.
  assert float(preconditioning.loss_weight(noise_level, SIGMA_DATA)) == pytest.approx(1 / c_out**2, rel=1e-5)


def test_preconditioned_network_is_c_skip_x_plus_c_out_f_of_c_in_x_and_c_noise():
  net = lambda x, c_noise, label: jnp.sin(x) + c_noise[:, None]
  x, t = jax.random.normal(jax.random.key(0), (4, 2)), jnp.array([0.0, 0.3, 0.7, 1.0])
  out = preconditioning.precondition(net, KARRAS, SIGMA_DATA)(x, t, None)
  s = np.asarray(KARRAS.sigma(t), np.float64)[:, None]
  c_skip, c_out, c_in = SIGMA_DATA**2 / (s**2 + SIGMA_DATA**2), s * SIGMA_DATA / np.sqrt(
      s**2 + SIGMA_DATA**2), 1 / np.sqrt(s**2 + SIGMA_DATA**2)
  expected = c_skip * x + c_out * (np.sin(c_in * np.asarray(x)) + np.log(s) / 4)
  np.testing.assert_allclose(out, expected, rtol=2e-5, atol=1e-6)
  np.testing.assert_allclose(KARRAS.sigma(jnp.array([0.0, 1.0])), [0.002, 20.0], rtol=1e-5)


@pytest.mark.parametrize("process", ["karras", "vdm_learned"])
def test_the_edm_network_embeds_the_noise_label_itself(process):
  """As EDM's code does: the time embedding's argument is c_noise = ln(s) / 4, not 1000 times it (the
  networks multiply the time they are given by TIME_SCALE, DDPM's steps). On VDM's process too, whose
  network otherwise reads the log-SNR in place of t: c_noise is already the noise level, also of a learned
  schedule that has moved from its start (read again through the schedule, it drifted with it)."""
  from gm_jax.models import time_embedding
  from gm_jax.tasks import diffusion
  from tests.conftest import load_config

  config = load_config("digits_edm", "tiny")
  if process == "vdm_learned":
    config.process.update(name="vdm", learned="endpoints")
    config.objective.loss = "vdm_elbo"
  model = diffusion.DiffusionModel(config)
  params = {"net": {}}
  if model.learned:
    start = model.schedule.init(jax.random.key(0), jnp.zeros((1,)))["params"]
    params["schedule"] = jax.tree.map(lambda v: v + 0.5, start)
  model.net = TimeRecordingNetwork()
  t = jnp.array([0.1, 0.5, 0.9])
  denoiser = model.denoiser(params)
  denoiser.x0_and_eps(jnp.zeros((3, 8, 8, 1)), t)
  noise_level = np.asarray(denoiser.process.sigma(t) / denoiser.process.alpha(t))
  np.testing.assert_allclose(model.net.times[0] * time_embedding.TIME_SCALE, np.log(noise_level) / 4,
                             rtol=1e-5)


def test_edm_loss_at_the_exact_denoiser_is_the_weighted_posterior_variance():
  """E_s[lambda(s) tr Cov(x0 | x0 + s n)] with ln s ~ N(-1.2, 1.2^2) and Cov(x0 | x) = Sigma - Sigma (Sigma +
  s^2 I)^-1 Sigma, integrated in float64; the sampled loss agrees within its standard error."""
  sigma_data = np.asarray(SIGMA, np.float64)

  def integrand(z):
    s = np.exp(-1.2 + 1.2 * z)
    cov = sigma_data - sigma_data @ np.linalg.solve(sigma_data + s**2 * np.eye(2), sigma_data)
    weight = (s**2 + SIGMA_DATA**2) / (s * SIGMA_DATA) ** 2
    return weight * np.trace(cov) * np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)

  expected = integrate.quad(integrand, -9, 9)[0]
  wide = processes.KarrasProcess(sigma_min=1e-4, sigma_max=1e3)  # covers the log-normal's range
  losses = jax.jit(lambda k: objectives.edm_loss(exact_denoiser(wide), data(jax.random.key(1), 400_000), k,
                                                 SIGMA_DATA))(jax.random.key(2))
  standard_error = float(jnp.std(losses)) / np.sqrt(len(losses))
  assert abs(float(jnp.mean(losses)) - expected) < 4 * standard_error, (float(jnp.mean(losses)), expected)


def _heun_reference(x, num_steps, rho=7.0):
  """Karras et al.'s Algorithm 1 in float64 for the exact denoiser:
  D(x; s) = MU + Sigma (Sigma + s^2 I)^-1 (x - MU)."""
  high, low = KARRAS.sigma_max, KARRAS.sigma_min
  i = np.arange(num_steps) / (num_steps - 1)
  levels = np.append((high ** (1 / rho) + i * (low ** (1 / rho) - high ** (1 / rho))) ** rho, 0.0)
  sigma_data, mu = np.asarray(SIGMA, np.float64), np.asarray(MU, np.float64)
  denoise = lambda x, s: mu + (x - mu) @ np.linalg.solve(sigma_data + s**2 * np.eye(2), sigma_data).T
  slope = lambda x, s: (x - denoise(x, s)) / s
  x = np.asarray(x, np.float64)
  for j in range(num_steps):
    d = slope(x, levels[j])
    x_next = x + (levels[j + 1] - levels[j]) * d
    if levels[j + 1] > 0:
      x_next = x + (levels[j + 1] - levels[j]) * 0.5 * (d + slope(x_next, levels[j + 1]))
    x = x_next
  return x


def _exact_flow(x1):
  """The probability-flow ODE solved exactly from s = sigma_max to 0:
  MU + Sigma^1/2 (Sigma + s^2 I)^-1/2 (x1 - MU)."""
  eigval, eigvec = np.linalg.eigh(np.asarray(SIGMA, np.float64))
  ratio = eigvec @ np.diag(np.sqrt(eigval / (eigval + KARRAS.sigma_max**2))) @ eigvec.T
  return MU + (np.asarray(x1, np.float64) - MU) @ ratio.T


def test_heun_sampler_equals_the_papers_algorithm_and_is_second_order():
  shape, key = (64, 2), jax.random.key(3)
  x1 = np.asarray(samplers.prior_sample(KARRAS, jax.random.split(key)[0], shape),
                  np.float64)  # its prior draw
  errors = []
  for n in (16, 32, 64):
    x, nfe = jax.jit(lambda k, n=n: samplers.edm_heun(exact_denoiser(KARRAS), k, shape, n))(key)
    assert int(nfe) == 2 * n - 1
    np.testing.assert_allclose(x, _heun_reference(x1, n), rtol=1e-4, atol=1e-4)
    errors.append(np.max(np.abs(_heun_reference(x1, n) - _exact_flow(x1))))
  assert (3.0 < errors[0] / errors[1] < 5.0
          and 3.0 < errors[1] / errors[2] < 5.0), errors  # halving h: error / 4


def test_churn_keeps_the_law_and_zero_churn_is_the_deterministic_sampler():
  """With the exact denoiser, churned samples are still N(MU, SIGMA): mean and covariance within 5 standard
  errors of N = 4000 draws (sqrt(C_ii / N), sqrt((C_ii C_jj + C_ij^2) / N))."""
  key, n = jax.random.key(4), 4000
  exact = exact_denoiser(KARRAS)
  run = lambda **kw: jax.jit(lambda k: samplers.edm_heun(exact, k, (n, 2), 64, **kw)[0])(key)
  np.testing.assert_array_equal(run(churn=0.0), run(churn=0.0, s_tmin=0.05, s_tmax=50.0))
  churned = np.asarray(run(churn=40.0, s_tmin=0.05, s_tmax=50.0, s_noise=1.0), np.float64)
  assert np.max(np.abs(churned - np.asarray(run(churn=0.0)))) > 0.1  # the churn does act
  var = np.diag(SIGMA).astype(np.float64)
  assert np.all(np.abs(churned.mean(0) - MU) < 5 * np.sqrt(var / n))
  assert np.all(np.abs(np.cov(churned.T) - SIGMA) < 5 * np.sqrt((np.outer(var, var) + SIGMA**2) / n))


def test_churn_never_raises_the_level_above_the_processs_top():
  # On the VP SDE the top level s(1) = sigma / alpha at t = 1 is where time ends; churning the first step
  # above it used to add noise the denoiser was then told was not there.
  process = processes.VPSDE()
  top = float(process.sigma(1.0) / process.alpha(1.0))
  exact = exact_denoiser(process)
  run = lambda **kw: jax.jit(lambda k: samplers.edm_heun(exact, k, (256, 2), 16, **kw)[0])(jax.random.key(5))
  np.testing.assert_array_equal(run(churn=20.0, s_tmin=0.99 * top), run(churn=0.0))
  # The cap's rounding at the top level (levels[0] / s - 1 = -7e-8 on this chain) must not be NaN noise.
  chain = exact_denoiser(processes.DiscreteDDPM(np.linspace(1e-4, 0.02, 20)))
  for steps in (1, 2, 3):
    assert np.all(np.isfinite(jax.jit(lambda k: samplers.edm_heun(chain, k, (64, 2), steps)[0])(
        jax.random.key(6))))
  assert np.max(np.abs(np.asarray(run(churn=20.0, s_tmin=0.3 * top)) - np.asarray(run(churn=0.0)))) > 0.01
  # Karras's process reads levels above sigma_max in closed form: its top level churns, as in Algorithm 2.
  exact = exact_denoiser(KARRAS)
  run = lambda **kw: jax.jit(lambda k: samplers.edm_heun(exact, k, (256, 2), 16, **kw)[0])(jax.random.key(5))
  assert np.max(np.abs(np.asarray(run(churn=20.0, s_tmin=0.99 * KARRAS.sigma_max)) -
                       np.asarray(run(churn=0.0)))) > 0.01


def test_sampler_and_loss_settings_on_the_wrong_process_are_refused():
  with pytest.raises(ValueError, match="edm_heun sampler needs a finite log-SNR"):
    samplers.edm_heun(exact_denoiser(processes.LinearInterpolant()), jax.random.key(0), (2, 2), 4)

