"""Exact log-likelihood of a diffusion model through its probability-flow ODE (Song et al. 2021).

Along dx/dt = F(x, t) the log-density changes by d log p(x_t) / dt = -div F(x_t, t), so
  log p_{t_min}(x) = log p_1(x_1) + int_{t_min}^1 div F(x_t, t) dt,
integrated from the data point at t_min to t = 1 together with x_t; p_1 is the process's Gaussian
prior. The divergence is the exact trace of dF/dx (one forward-mode pass per dimension, for small
dimensions) or Hutchinson's unbiased estimate v^T (dF/dx) v with one Rademacher v per example and solve.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from gm_jax.diffusion.denoiser import Denoiser
from gm_jax.sampling.diffusion import probability_flow_velocity, solve_ode


def gaussian_log_prob(x, std: float) -> jax.Array:
  """log N(x; 0, std^2 I) per example."""
  d = x[0].size
  sq = jnp.sum(x.reshape(x.shape[0], -1) ** 2, axis=-1)
  return -0.5 * sq / std**2 - d * math.log(std) - 0.5 * d * math.log(2 * math.pi)


def _exact_divergence(velocity, x, t):
  """Per example trace of d velocity / dx, via a forward-mode Jacobian of each example's velocity."""
  flat_shape = x.shape[1:]

  def single(x_one):
    f = lambda y: velocity(t, y.reshape((1,) + flat_shape)).reshape(-1)
    jac = jax.jacfwd(f)(x_one.reshape(-1))
    return jnp.trace(jac)

  return jax.vmap(single)(x)


def _hutchinson_divergence(velocity, x, t, probe):
  f, jvp = jax.jvp(lambda y: velocity(t, y), (x,), (probe,))
  del f
  return jnp.sum((jvp * probe).reshape(x.shape[0], -1), axis=-1)


def ode_log_likelihood(denoiser: Denoiser, x, key=None, exact_trace: bool = True, solver: str = "tsit5",
                       num_steps: int = 0, rtol: float = 1e-5, atol: float = 1e-5):
  """(log p_{t_min}(x) per example in nats, number of velocity evaluations)."""
  process = denoiser.process
  velocity = lambda t, y: probability_flow_velocity(denoiser, y, t)
  if exact_trace:
    divergence = lambda t, y: _exact_divergence(velocity, y, t)
  else:
    probe = jax.random.rademacher(key, x.shape).astype(x.dtype)
    divergence = lambda t, y: _hutchinson_divergence(velocity, y, t, probe)

  def augmented(t, state):
    y, _ = state
    return velocity(t, y), divergence(t, y)

  (x1, integral), nfe = solve_ode(augmented, (x, jnp.zeros(x.shape[:1])), process.t_min, 1.0, solver,
                                  num_steps, rtol, atol)
  return gaussian_log_prob(x1, process.prior_std) + integral, nfe
