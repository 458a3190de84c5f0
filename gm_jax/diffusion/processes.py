"""Gaussian forward processes in continuous time t in [0, 1]: x_t = alpha(t) x_0 + sigma(t) eps.

Every process here is a linear SDE dx = f(t) x dt + g(t) dW whose marginals are those above; f and
g^2 follow from alpha and sigma (f = d log alpha / dt, g^2 = d sigma^2 / dt - 2 f sigma^2) and are
computed by autodiff, so a process only states log alpha(t) and sigma^2(t). The log signal-to-noise
ratio lambda(t) = log(alpha^2 / sigma^2) decreases in t.

- DiscreteDDPM: Ho et al.'s T-step chain with betas (linear or cosine); at t = i / T its marginals are
  exactly the chain's, and between grid points log abar is linear (a VP SDE with piecewise constant beta).
- VPSDE, SubVPSDE, VESDE: Song et al. (2021).
- LogSNRProcess: variance preserving with a given log-SNR function (VDM's learned schedule).
- KarrasProcess: EDM's (Karras et al. 2022) alpha = 1 with sigma(t) = (sigma_min^(1/rho) + t
  (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho, so that equal steps in t are EDM's rho = 7 time steps.
- LinearInterpolant, CosineInterpolant: flow matching's paths from data at t = 0 to pure noise at t = 1
  (alpha(1) = 0), which state alpha and sigma themselves; their SDE coefficients f and g^2 diverge at
  t = 1, so only the velocity form of the probability-flow ODE (d_alpha, d_sigma) is used there.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


class Process:
  """Subclasses define log_alpha(t) and sigma2(t) for scalar or array t."""

  #: The prior the chain ends in: x_1 ~ N(0, prior_std^2 I) approximately.
  prior_std: float = 1.0
  #: Smallest t used by continuous-time losses, samplers and likelihoods.
  t_min: float = 0.0
  #: alpha(1) = 0: the log-SNR and the SDE's coefficients are infinite at t = 1.
  ends_in_pure_noise: bool = False
  #: time_at_log_snr gives t > 1 for noise beyond sigma(1) (a closed form), rather than clamping at 1.
  time_extends_past_one: bool = False

  def log_alpha(self, t):
    raise NotImplementedError

  def sigma2(self, t):
    raise NotImplementedError

  def alpha(self, t):
    return jnp.exp(self.log_alpha(t))

  def sigma(self, t):
    return jnp.sqrt(self.sigma2(t))

  def log_snr(self, t):
    return 2.0 * self.log_alpha(t) - jnp.log(self.sigma2(t))

  def _elementwise_derivative(self, fn, t):
    t = jnp.asarray(t, jnp.float32)
    return jnp.vectorize(jax.grad(fn))(t)

  def d_alpha(self, t):
    """d alpha / dt."""
    return self._elementwise_derivative(self.alpha, t)

  def d_sigma(self, t):
    """d sigma / dt (infinite where sigma = 0 for the processes that state sigma^2)."""
    return self._elementwise_derivative(self.sigma, t)

  def drift_coefficient(self, t):
    """f(t) in dx = f(t) x dt + g(t) dW."""
    return self._elementwise_derivative(self.log_alpha, t)

  def diffusion2(self, t):
    """g(t)^2."""
    return self._elementwise_derivative(self.sigma2, t) - 2.0 * self.drift_coefficient(t) * self.sigma2(t)

  def log_snr_derivative(self, t):
    return self._elementwise_derivative(self.log_snr, t)

  def time_at_log_snr(self, log_snr, iterations: int = 60) -> jax.Array:
    """t in [t_min, 1] with log_snr(t) = log_snr (bisection: the log-SNR decreases in t)."""
    lo = jnp.full_like(log_snr, self.t_min)
    hi = jnp.ones_like(log_snr)

    def body(_, bounds):
      lo, hi = bounds
      mid = 0.5 * (lo + hi)
      above = self.log_snr(mid) > log_snr
      return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

    lo, hi = jax.lax.fori_loop(0, iterations, body, (lo, hi))
    return 0.5 * (lo + hi)

  def marginal(self, x0, t, eps):
    """x_t for per-example t (B,) broadcast over x0's trailing axes."""
    a, s = (expand(v, x0) for v in (self.alpha(t), self.sigma(t)))
    return a * x0 + s * eps


def expand(v_B, x_B):
  """Reshapes a per-example (B,) array to broadcast against x (B, ...)."""
  v_B = jnp.asarray(v_B)
  return v_B.reshape(v_B.shape + (1,) * (x_B.ndim - v_B.ndim))


def linear_betas(num_steps: int, beta_start: float = 1e-4, beta_end: float = 0.02,
                 max_beta: float = 0.999) -> np.ndarray:
  """DDPM's linear schedule (given for T = 1000; scaled by 1000 / T so the process stays about the same
  for other T, and capped below 1 for very short chains)."""
  scale = 1000.0 / num_steps
  return np.minimum(np.linspace(scale * beta_start, scale * beta_end, num_steps, dtype=np.float64), max_beta)


def cosine_betas(num_steps: int, offset: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
  """Nichol & Dhariwal's cosine schedule: abar(t) = cos^2(pi/2 (t + s) / (1 + s)) / abar(0)."""
  f = lambda t: np.cos((t + offset) / (1 + offset) * np.pi / 2) ** 2
  t = np.arange(num_steps + 1, dtype=np.float64) / num_steps
  abar = f(t) / f(0)
  return np.minimum(1 - abar[1:] / abar[:-1], max_beta)


@dataclasses.dataclass(frozen=True, eq=False)
class DiscreteDDPM(Process):
  """The DDPM chain x_i ~ N(sqrt(1 - beta_i) x_{i-1}, beta_i), i = 1..T, placed at t = i / T."""

  betas: np.ndarray

  @property
  def num_steps(self) -> int:
    return len(self.betas)

  @property
  def t_min(self) -> float:
    return 1.0 / self.num_steps

  @property
  def log_abar(self) -> np.ndarray:
    """log abar_i for i = 0..T (abar_0 = 1)."""
    return np.concatenate([[0.0], np.cumsum(np.log1p(-self.betas))])

  def log_alpha(self, t):
    grid = jnp.asarray(self.log_abar, jnp.float32)
    return 0.5 * jnp.interp(jnp.asarray(t, jnp.float32) * self.num_steps,
                            jnp.arange(self.num_steps + 1.0), grid)

  def sigma2(self, t):
    return -jnp.expm1(2.0 * self.log_alpha(t))


@dataclasses.dataclass(frozen=True, eq=False)
class VPSDE(Process):
  """beta(t) = beta_min + t (beta_max - beta_min); alpha = exp(-1/2 int beta), sigma^2 = 1 - alpha^2."""

  beta_min: float = 0.1
  beta_max: float = 20.0
  t_min: float = 1e-5

  def log_alpha(self, t):
    t = jnp.asarray(t, jnp.float32)
    return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

  def sigma2(self, t):
    return -jnp.expm1(2.0 * self.log_alpha(t))


@dataclasses.dataclass(frozen=True, eq=False)
class SubVPSDE(VPSDE):
  """The VP SDE's drift with diffusion beta (1 - alpha^4): sigma^2 = (1 - alpha^2)^2, below VP's."""

  t_min: float = 1e-5

  def sigma2(self, t):
    return jnp.expm1(2.0 * self.log_alpha(t)) ** 2


@dataclasses.dataclass(frozen=True, eq=False)
class VESDE(Process):
  """alpha = 1, sigma(t) = sigma_min (sigma_max / sigma_min)^t."""

  sigma_min: float = 0.01
  sigma_max: float = 50.0
  t_min: float = 1e-5

  @property
  def prior_std(self) -> float:
    return self.sigma_max

  def log_alpha(self, t):
    return jnp.zeros_like(jnp.asarray(t, jnp.float32))

  def sigma2(self, t):
    t = jnp.asarray(t, jnp.float32)
    return (self.sigma_min * (self.sigma_max / self.sigma_min) ** t) ** 2


@dataclasses.dataclass(frozen=True, eq=False)
class LogSNRProcess(Process):
  """Variance preserving with alpha^2 = sigmoid(lambda(t)), sigma^2 = sigmoid(-lambda(t)) (VDM)."""

  log_snr_fn: Callable[[jax.Array], jax.Array]
  t_min: float = 0.0

  def log_snr(self, t):
    return self.log_snr_fn(jnp.asarray(t, jnp.float32))

  def log_alpha(self, t):
    return 0.5 * jax.nn.log_sigmoid(self.log_snr(t))

  def sigma2(self, t):
    return jax.nn.sigmoid(-self.log_snr(t))


def rho_warp(start, end, u, rho: float):
  """(start^(1/rho) + u (end^(1/rho) - start^(1/rho)))^rho: EDM's noise levels, equally spaced in
  s^(1/rho)."""
  return (start ** (1 / rho) + u * (end ** (1 / rho) - start ** (1 / rho))) ** rho


@dataclasses.dataclass(frozen=True, eq=False)
class KarrasProcess(VESDE):
  """The VE process on EDM's rho-warped noise levels: sigma(t) = rho_warp(sigma_min, sigma_max, t, rho)."""

  sigma_min: float = 0.002
  sigma_max: float = 80.0
  t_min: float = 0.0
  rho: float = 7.0
  time_extends_past_one: bool = True

  def sigma(self, t):
    return rho_warp(self.sigma_min, self.sigma_max, jnp.asarray(t, jnp.float32), self.rho)

  def sigma2(self, t):
    return self.sigma(t) ** 2

  def time_at_log_snr(self, log_snr, iterations: int = 0) -> jax.Array:
    """Closed form: sigma = exp(-log_snr / 2) inverted (t outside [0, 1] beyond the noise range)."""
    low, high = self.sigma_min ** (1 / self.rho), self.sigma_max ** (1 / self.rho)
    return (jnp.exp(-log_snr / (2 * self.rho)) - low) / (high - low)


class Interpolant(Process):
  """x_t = alpha(t) x_0 + sigma(t) eps from alpha(0) = 1, sigma(0) = 0 to alpha(1) = 0, sigma(1) = 1
  (Albergo & Vanden-Eijnden 2023); subclasses state alpha and sigma."""

  t_min: float = 0.0
  ends_in_pure_noise: bool = True

  def log_alpha(self, t):
    return jnp.log(self.alpha(t))

  def sigma2(self, t):
    return self.sigma(t) ** 2


@dataclasses.dataclass(frozen=True, eq=False)
class LinearInterpolant(Interpolant):
  """alpha = 1 - t, sigma = t: rectified flow (Liu et al. 2023), the optimal-transport path of Lipman et
  al. (2023) with sigma_min = 0; its velocity eps - x_0 is constant along each pair's straight line."""

  def alpha(self, t):
    return 1.0 - jnp.asarray(t, jnp.float32)

  def sigma(self, t):
    return jnp.asarray(t, jnp.float32)


@dataclasses.dataclass(frozen=True, eq=False)
class CosineInterpolant(Interpolant):
  """alpha = cos(pi t / 2), sigma = sin(pi t / 2): the variance-preserving path (alpha^2 + sigma^2 = 1)."""

  def alpha(self, t):
    # As sin(pi (1 - t) / 2), exactly 0 at t = 1: float32 cos(pi / 2) is -4.4e-8, whose log-SNR is NaN.
    return jnp.sin(0.5 * jnp.pi * (1.0 - jnp.asarray(t, jnp.float32)))

  def sigma(self, t):
    return jnp.sin(0.5 * jnp.pi * jnp.asarray(t, jnp.float32))


def linear_log_snr(log_snr_start: float, log_snr_end: float) -> Callable[[jax.Array], jax.Array]:
  return lambda t: log_snr_start + (log_snr_end - log_snr_start) * t


CHAINS = ("ddpm_linear", "ddpm_cosine")  # the process names of DDPM chains of T discrete steps


def check_parameters(cfg) -> None:
  """One-line errors for a process's fields that give no valid process (a division by zero, or NaN)."""
  name = cfg.name
  if name in CHAINS and cfg.num_steps < 1:
    raise ValueError(f"process.num_steps={cfg.num_steps} must be >= 1")
  if name in ("vp", "subvp") and not (0 <= cfg.beta_min <= cfg.beta_max and cfg.beta_max > 0):
    raise ValueError(f"process.beta_min={cfg.beta_min} and process.beta_max={cfg.beta_max} must satisfy "
                     f"0 <= beta_min <= beta_max, beta_max > 0")
  if name in ("ve", "karras") and not 0 < cfg.sigma_min < cfg.sigma_max:
    raise ValueError(f"process.sigma_min={cfg.sigma_min} and process.sigma_max={cfg.sigma_max} must satisfy "
                     f"0 < sigma_min < sigma_max")
  if name == "karras" and not cfg.rho > 0:
    raise ValueError(f"process.rho={cfg.rho} must be > 0")
  if name == "vdm" and not cfg.gamma_min < cfg.gamma_max:
    raise ValueError(f"process.gamma_min={cfg.gamma_min} must be below process.gamma_max={cfg.gamma_max} "
                     f"(the log-SNR falls from -gamma_min to -gamma_max)")


def make_process(cfg) -> Process:
  """From config.process: name (ddpm_linear | ddpm_cosine | vp | subvp | ve | vdm | karras |
  linear_interpolant | cosine_interpolant) and its fields.

  For 'vdm' the learned schedule's parameters live in the model; this returns the process for its
  initial (fixed, linear) log-SNR, used where no parameters are at hand.
  """
  name = cfg.name
  check_parameters(cfg)
  if name == "ddpm_linear":
    return DiscreteDDPM(linear_betas(cfg.num_steps))
  if name == "ddpm_cosine":
    return DiscreteDDPM(cosine_betas(cfg.num_steps))
  if name == "vp":
    return VPSDE(cfg.beta_min, cfg.beta_max)
  if name == "subvp":
    return SubVPSDE(cfg.beta_min, cfg.beta_max)
  if name == "ve":
    return VESDE(cfg.sigma_min, cfg.sigma_max)
  if name == "vdm":
    return LogSNRProcess(linear_log_snr(-cfg.gamma_min, -cfg.gamma_max))
  if name == "karras":
    return KarrasProcess(sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max, rho=cfg.rho)
  if name == "linear_interpolant":
    return LinearInterpolant()
  if name == "cosine_interpolant":
    return CosineInterpolant()
  raise ValueError(f"unknown config.process.name {name!r}; choose ddpm_linear, ddpm_cosine, vp, subvp, ve, "
                   "vdm, karras, linear_interpolant or cosine_interpolant")


def gaussian_prior_kl(x0, process: Process) -> jax.Array:
  """KL(q(x_1 | x_0) || N(0, prior_std^2 I)) per example, summed over dimensions (nats)."""
  one = jnp.ones(x0.shape[:1])
  mean = expand(process.alpha(one), x0) * x0
  var = expand(process.sigma2(one), x0)
  p_var = process.prior_std**2
  kl = 0.5 * (var / p_var + mean**2 / p_var - 1.0 - jnp.log(var / p_var))
  return jnp.sum(kl.reshape(x0.shape[0], -1), axis=-1)

