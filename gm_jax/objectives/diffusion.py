"""Diffusion objectives (seeds 000, 001): denoising losses and variational bounds on -log p(x).

All losses are per example (B,), summed over dimensions, in terms of the noise error
||eps_hat - eps||^2 at x_t = alpha_t x_0 + sigma_t eps, with the network read as an eps prediction:
- weighting 'eps': L_simple (Ho et al. 2020); 'x0': ||x0_hat - x0||^2 = e^{-lambda} ||eps_hat - eps||^2;
  'v': ||v_hat - v||^2 = ((alpha^2 + sigma^2) / alpha)^2 ||eps_hat - eps||^2;
  'likelihood': denoising score matching with weight g(t)^2 (Song et al. 2021), which equals
  -lambda'(t) ||eps_hat - eps||^2, i.e. twice VDM's continuous-time diffusion loss.
- continuous_vlb_terms: VDM's ELBO: prior KL + (1/2) E_t[-lambda'(t) ||eps_hat - eps||^2] + reconstruction.
- discrete-time: the DDPM VLB's KL terms with either fixed reverse variance and the discretized
  Gaussian decoder at t = 0; VDM's T-step diffusion loss.
- edm_loss: Karras et al.'s (2022) loss, lambda(s) ||x0_hat - x0||^2 at log-normal noise levels s.
- flow_matching_loss: conditional flow matching, ||velocity_hat - (alpha' x0 + sigma' eps)||^2, read as a
  velocity rather than through the noise error (its weight would diverge where alpha = 0).
Here lambda(t) = log(alpha_t^2 / sigma_t^2), the log signal-to-noise ratio.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from gm_jax.diffusion import preconditioning
from gm_jax.diffusion.denoiser import Denoiser
from gm_jax.diffusion.processes import DiscreteDDPM, Process, expand, gaussian_prior_kl

WEIGHTINGS = ("eps", "x0", "v", "likelihood")


def per_example_sum(x_B):
  return jnp.sum(x_B.reshape(x_B.shape[0], -1), axis=-1)


def sample_times(key, batch_size: int, process: Process, antithetic: bool = False) -> jax.Array:
  """t per example: uniform on the grid {1..T}/T for a discrete chain, else on [t_min, 1] (antithetic:
  one uniform shifted by i / B, which lowers the variance of the ELBO's estimate, as VDM does)."""
  if antithetic:
    u = jnp.mod(jax.random.uniform(key, ()) + jnp.arange(batch_size) / batch_size, 1.0)
  else:
    u = jax.random.uniform(key, (batch_size,))
  if isinstance(process, DiscreteDDPM):
    return (jnp.floor(u * process.num_steps) + 1.0) / process.num_steps
  return process.t_min + (1.0 - process.t_min) * u


def eps_weight(weighting: str, process: Process, t) -> jax.Array:
  if weighting == "eps":
    return jnp.ones_like(t)
  if weighting == "x0":
    return jnp.exp(-process.log_snr(t))
  if weighting == "v":
    alpha2, sigma2 = process.alpha(t) ** 2, process.sigma2(t)
    return (alpha2 + sigma2) ** 2 / alpha2
  if weighting == "likelihood":
    return -process.log_snr_derivative(t)
  raise ValueError(f"unknown diffusion loss weighting {weighting!r}; choose one of {WEIGHTINGS}")


def noise_error(denoiser: Denoiser, x0, t, eps) -> jax.Array:
  """||eps_hat(x_t, t) - eps||^2 per example."""
  x_t = denoiser.process.marginal(x0, t, eps)
  return per_example_sum((denoiser.predict(x_t, t, "eps") - eps) ** 2)


def denoising_loss(denoiser: Denoiser, x0, key, weighting: str = "eps", antithetic: bool = False):
  """w(t) ||eps_hat - eps||^2 at one random t per example; (B,)."""
  t_key, eps_key = jax.random.split(key)
  t = sample_times(t_key, x0.shape[0], denoiser.process, antithetic)
  eps = jax.random.normal(eps_key, x0.shape)
  return eps_weight(weighting, denoiser.process, t) * noise_error(denoiser, x0, t, eps)


def edm_loss(denoiser: Denoiser, x0, key, sigma_data: float, p_mean: float = -1.2, p_std: float = 1.2):
  """EDM's training loss (Karras et al. 2022, eq. 8 and Table 1): ln s ~ N(p_mean, p_std^2) per example,
  lambda(s) ||x0_hat - x0||^2 with lambda = (s^2 + sd^2) / (s sd)^2; (B,). s is the noise level of
  x_t / alpha(t), found as the time whose log-SNR is -2 ln s."""
  process = denoiser.process
  s_key, eps_key = jax.random.split(key)
  log_s = p_mean + p_std * jax.random.normal(s_key, x0.shape[:1])
  t = process.time_at_log_snr(-2.0 * log_s)
  eps = jax.random.normal(eps_key, x0.shape)
  x0_hat = denoiser.predict(process.marginal(x0, t, eps), t, "x0")
  noise_level = process.sigma(t) / process.alpha(t)
  return preconditioning.loss_weight(noise_level, sigma_data) * per_example_sum((x0_hat - x0) ** 2)


def flow_matching_loss(denoiser: Denoiser, x0, key, couple: Callable | None = None, antithetic: bool = False):
  """Conditional flow matching (Lipman et al. 2023; Liu et al. 2023; Albergo & Vanden-Eijnden 2023):
  ||velocity_hat(x_t, t) - (alpha'(t) x0 + sigma'(t) eps)||^2 at one t ~ U[t_min, 1] per example; (B,).
  Its minimizer is E[alpha' x0 + sigma' eps | x_t], the probability-flow ODE's velocity.
  couple(key, x0, eps) -> eps re-pairs the noise with the data (gm_jax.diffusion.coupling's minibatch OT);
  None draws it independently. antithetic spreads the batch's times as sample_times does."""
  process = denoiser.process
  t_key, eps_key = jax.random.split(key)
  t = sample_times(t_key, x0.shape[0], process, antithetic)
  eps = jax.random.normal(eps_key, x0.shape)
  if couple is not None:
    eps = couple(jax.random.fold_in(key, 2), x0, eps)
  target = expand(process.d_alpha(t), x0) * x0 + expand(process.d_sigma(t), x0) * eps
  return per_example_sum((denoiser.velocity(process.marginal(x0, t, eps), t) - target) ** 2)


def continuous_diffusion_loss(denoiser: Denoiser, x0, key, antithetic: bool = True,
                              uniform_in_log_snr: bool = False):
  """VDM's L_inf: (1/2) E_t[-lambda'(t) ||eps_hat - eps||^2] over t in [t_min, 1], one t per example.

  With uniform_in_log_snr the same integral is estimated as (1/2)(lambda(t_min) - lambda(1))
  E_lambda[||eps_hat - eps||^2] with lambda uniform (t found by bisection): equal in expectation, and
  without the 1/t weights that make the uniform-t estimate heavy-tailed for SDEs whose sigma(t_min) is
  tiny (VP, sub-VP). Used for evaluation; training keeps uniform t, which a learned schedule can
  differentiate."""
  process = denoiser.process
  if not uniform_in_log_snr:
    return 0.5 * (1.0 - process.t_min) * denoising_loss(denoiser, x0, key, "likelihood", antithetic)
  t_key, eps_key = jax.random.split(key)
  u = sample_times(t_key, x0.shape[0], process, antithetic)  # uniform on [t_min, 1]
  u = (u - process.t_min) / (1.0 - process.t_min)
  high, low = process.log_snr(jnp.float32(process.t_min)), process.log_snr(jnp.float32(1.0))
  t = process.time_at_log_snr(high + u * (low - high))
  eps = jax.random.normal(eps_key, x0.shape)
  return 0.5 * (high - low) * noise_error(denoiser, x0, t, eps)


def discrete_diffusion_loss(denoiser: Denoiser, x0, key, num_steps: int):
  """VDM's T-step diffusion loss: (T/2) E_i[(SNR(s) - SNR(t)) ||x0 - x0_hat(x_t; t)||^2] with t = i / T,
  s = t - 1 / T (the sum of the T KL terms for the chain on that grid)."""
  process = denoiser.process
  t_key, eps_key = jax.random.split(key)
  i = jax.random.randint(t_key, (x0.shape[0],), 1, num_steps + 1)
  t = i / num_steps
  s = jnp.maximum(t - 1.0 / num_steps, process.t_min)
  eps = jax.random.normal(eps_key, x0.shape)
  x0_error = jnp.exp(-process.log_snr(t)) * noise_error(denoiser, x0, t, eps)
  snr_gap = jnp.expm1(process.log_snr(s) - process.log_snr(t)) * jnp.exp(process.log_snr(t))
  return 0.5 * num_steps * snr_gap * x0_error


# --- The discrete DDPM chain's VLB --------------------------------------------------------------


def posterior_coefficients(chain: DiscreteDDPM, i):
  """q(x_{i-1} | x_i, x_0) = N(c0 x_0 + ci x_i, var) for integer steps i >= 1, as (c0, ci, var)."""
  log_abar = jnp.asarray(chain.log_abar, jnp.float32)
  betas = jnp.asarray(chain.betas, jnp.float32)
  beta = betas[i - 1]
  # 1 - abar from log abar by expm1, as the forward process does: by subtraction in float32 it loses
  # digits where abar is close to 1 (c0 at i = 1 came out 0.99983, not 1).
  one_minus_abar, one_minus_abar_prev = -jnp.expm1(log_abar[i]), -jnp.expm1(log_abar[i - 1])
  c0 = jnp.exp(0.5 * log_abar[i - 1]) * beta / one_minus_abar
  ci = jnp.sqrt(1.0 - beta) * one_minus_abar_prev / one_minus_abar
  var = one_minus_abar_prev * beta / one_minus_abar
  return c0, ci, var


def reverse_variance(chain: DiscreteDDPM, i, kind: str):
  """The reverse step's fixed variance: 'large' beta_i or 'small' beta_tilde_i (beta_tilde_2 at i = 1,
  where beta_tilde_1 = 0, as DDPM's code does)."""
  betas = jnp.asarray(chain.betas, jnp.float32)
  if kind == "large":
    return betas[i - 1]
  if kind == "small":
    return posterior_coefficients(chain, jnp.maximum(i, 2))[2]
  raise ValueError(f"unknown reverse variance {kind!r}; use 'large' or 'small'")


def gaussian_kl(mean_q, var_q, mean_p, var_p):
  """KL(N(mean_q, var_q) || N(mean_p, var_p)) elementwise: 1/2 ((mean_q - mean_p)^2 / var_p + x - log(1 + x))
  with x = var_q / var_p - 1. Kept apart, the means' term survives beside equal variances; added to
  var_q / var_p before subtracting 1 it vanished below 1's rounding (a nearly exact denoiser's late
  DDPM steps)."""
  x = (var_q - var_p) / var_p
  return 0.5 * ((mean_q - mean_p) ** 2 / var_p + (x - jnp.log1p(x)))


def log_diff_normal_cdf(a, b):
  """log(Phi(b) - Phi(a)) for a < b, stable in both tails."""
  lower_tail = a + b <= 0  # use the tail in which the two CDFs are small
  hi = jnp.where(lower_tail, jax.scipy.special.log_ndtr(b), jax.scipy.special.log_ndtr(-a))
  lo = jnp.where(lower_tail, jax.scipy.special.log_ndtr(a), jax.scipy.special.log_ndtr(-b))
  return hi + jnp.log(-jnp.expm1(jnp.minimum(lo - hi, -1e-12)))


def discretized_gaussian_log_likelihood(x0, mean, std, num_levels: int):
  """log P(x0) per example for data on the grid {-1, ..., 1} of `num_levels` values: each value owns
  the bin of half-width 1 / (num_levels - 1) around it, the end bins extend to -inf / +inf."""
  half = 1.0 / (num_levels - 1)
  lower = jnp.where(x0 <= -1.0 + 1e-6, -1e30, (x0 - half - mean) / std)  # -1e30 / 1e30: the open end bins
  upper = jnp.where(x0 >= 1.0 - 1e-6, 1e30, (x0 + half - mean) / std)
  return per_example_sum(log_diff_normal_cdf(lower, upper))


def discretized_decoder(num_levels: int):
  """-log P(x0) under the discretized Gaussian N(mean, std^2) on the data's levels (images)."""
  return lambda x0, mean, std: -discretized_gaussian_log_likelihood(x0, mean, std, num_levels)


def gaussian_decoder(x0, mean, std):
  """-log N(x0; mean, std^2): the density decoder for continuous data (points)."""
  return per_example_sum(0.5 * ((x0 - mean) / std) ** 2 + jnp.log(std) + 0.5 * jnp.log(2 * jnp.pi))


def ddpm_vlb_term(denoiser: Denoiser, x0, i, eps, variance: str, decoder):
  """The VLB term at integer step i (B,): KL(q(x_{i-1}|x_i, x_0) || p(x_{i-1}|x_i)) for i >= 2, and
  decoder(x0, mean, std) = -log p(x_0 | x_1) for i = 1."""
  chain = denoiser.process
  t = i / chain.num_steps
  x_t = chain.marginal(x0, t, eps)
  x0_hat, _ = denoiser.x0_and_eps(x_t, t)
  c0, ci, post_var = (expand(v, x0) for v in posterior_coefficients(chain, i))
  model_var = expand(reverse_variance(chain, i, variance), x0)
  model_mean = c0 * x0_hat + ci * x_t
  # The KL reads the means' difference, c0 (x0 - x0_hat): the difference of the two means themselves
  # loses it under ci x_t's rounding when x0_hat is close (late steps, where c0 is small).
  kl = per_example_sum(gaussian_kl(c0 * (x0 - x0_hat), jnp.maximum(post_var, 1e-20), 0.0, model_var))
  return jnp.where(i == 1, decoder(x0, model_mean, jnp.sqrt(model_var)), kl)


def ddpm_vlb(denoiser: Denoiser, x0, key, variance: str, decoder):
  """The full DDPM bound on -log p(x0) in nats (B,): prior KL + all T terms (T network evaluations)."""
  chain = denoiser.process

  def body(total, i):
    eps = jax.random.normal(jax.random.fold_in(key, i), x0.shape)
    return total + ddpm_vlb_term(denoiser, x0, jnp.full(x0.shape[:1], i), eps, variance, decoder), None

  terms, _ = jax.lax.scan(body, jnp.zeros(x0.shape[:1]), jnp.arange(1, chain.num_steps + 1))
  return terms + gaussian_prior_kl(x0, chain)


def vdm_reconstruction_nll(process: Process, x0, eps, num_levels: int):
  """-log p(x0 | z_0) with VDM's decoder: z_0 = alpha_0 x0 + sigma_0 eps at t_min (VDM: t = 0), and
  p(x = k | z_0) proportional to N(z_0; alpha_0 k, sigma_0^2) over the data's levels (a categorical per
  dimension)."""
  zero = jnp.full(x0.shape[:1], process.t_min)
  alpha0, sigma0 = expand(process.alpha(zero), x0), expand(process.sigma(zero), x0)
  z0 = alpha0 * x0 + sigma0 * eps
  levels = jnp.linspace(-1.0, 1.0, num_levels)
  logits = -0.5 * ((z0[..., None] - alpha0[..., None] * levels) / sigma0[..., None]) ** 2
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  index = jnp.round((x0 + 1.0) * (num_levels - 1) / 2.0).astype(jnp.int32)
  return -per_example_sum(jnp.take_along_axis(log_probs, index[..., None], axis=-1)[..., 0])


def gaussian_reconstruction_nll(process: Process, x0, eps):
  """-log N(x0; z_0/alpha_0, sigma_0^2/alpha_0^2) at t_min, z_0 = alpha_0 x0 + sigma_0 eps: the decoder
  for continuous data (points). (x0 - z_0/alpha_0) / (sigma_0/alpha_0) is -eps exactly; computed by the
  subtraction it lost all precision where sigma_0/alpha_0 is far below ulp(x0) / eps (sub-VP's 1e-6 at
  t_min: 0.6 nats off on one example)."""
  t = jnp.full(x0.shape[:1], process.t_min)
  alpha, sigma = expand(process.alpha(t), x0), expand(process.sigma(t), x0)
  return per_example_sum(0.5 * eps**2 + jnp.log(sigma / alpha) + 0.5 * jnp.log(2 * jnp.pi))


def continuous_vlb_terms(denoiser: Denoiser, x0, key, reconstruction_nll, antithetic: bool = True,
                         uniform_in_log_snr: bool = False):
  """VDM's ELBO terms (B,) each: {'prior', 'diffusion', 'reconstruction'}; their sum bounds -log p(x).
  reconstruction_nll(process, x0, eps): vdm_reconstruction_nll (images) or gaussian_reconstruction_nll."""
  diff_key, rec_key = jax.random.split(key)
  return {"prior": gaussian_prior_kl(x0, denoiser.process),
          "diffusion": continuous_diffusion_loss(denoiser, x0, diff_key, antithetic, uniform_in_log_snr),
          "reconstruction": reconstruction_nll(denoiser.process, x0, jax.random.normal(rec_key, x0.shape))}
