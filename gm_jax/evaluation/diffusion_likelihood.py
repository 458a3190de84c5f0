"""Exact log-likelihood of a diffusion model through its probability-flow ODE (Song et al. 2021).

Along dx/dt = F(x, t) the log-density changes by d log p(x_t) / dt = -div F(x_t, t), so
  log p_{t_min}(x) = log p_1(x_1) + int_{t_min}^1 div F(x_t, t) dt,
integrated from the data point at t_min to t = 1 together with x_t; p_1 is the process's Gaussian
prior. The divergence is the exact trace of dF/dx (one forward-mode pass per dimension, for small
dimensions) or Hutchinson's unbiased estimate v^T (dF/dx) v with one Rademacher v per example and solve;
either way the velocity itself comes from the same forward-mode pass.
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


def _velocity_and_exact_divergence(velocity, t, y):
  """F(y, t) and the per-example trace of dF/dy: one JVP per input dimension, along that dimension for
  every example at once (the network treats examples independently), all sharing one primal pass."""
  d = y[0].size
  basis = jnp.eye(d, dtype=y.dtype).reshape((d, 1) + y.shape[1:])
  along = lambda e: jax.jvp(lambda z: velocity(t, z), (y,), (jnp.broadcast_to(e, y.shape),))
  f, jvps = jax.vmap(along, out_axes=(None, 0))(basis)
  return f, jnp.einsum("kbk->b", jvps.reshape(d, y.shape[0], d))


def _velocity_and_hutchinson_divergence(velocity, t, y, probe):
  """F(y, t) and the unbiased estimate probe^T (dF/dy) probe per example, from one JVP."""
  f, jvp = jax.jvp(lambda z: velocity(t, z), (y,), (probe,))
  return f, jnp.sum((jvp * probe).reshape(y.shape[0], -1), axis=-1)


def ode_log_likelihood(denoiser: Denoiser, x, key=None, exact_trace: bool = True, solver: str = "tsit5",
                       num_steps: int = 0, rtol: float = 1e-5, atol: float = 1e-5):
  """(log p_{t_min}(x) per example in nats, number of velocity evaluations). `key` draws Hutchinson's
  probes: one key for the batch, or one per example (B,) so that each example's probe is its own."""
  process = denoiser.process
  if not exact_trace and key is None:
    raise ValueError("ode_log_likelihood: exact_trace=False draws Hutchinson's probes; pass a key")
  if not exact_trace and not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
    key = jax.random.wrap_key_data(key)  # a raw uint32 key (jax.random.PRNGKey), or (B, 2) of them
  if exact_trace:
    probe = None
  elif key.ndim:
    probe = jax.vmap(lambda k: jax.random.rademacher(k, x.shape[1:]))(key).astype(x.dtype)
  else:
    probe = jax.random.rademacher(key, x.shape).astype(x.dtype)

  def augmented(t, state, args):  # args: the probe and the labels of the examples being solved
    probe, labels = args
    velocity = lambda t, y: probability_flow_velocity(denoiser.with_labels(labels), y, t)
    if exact_trace:
      return _velocity_and_exact_divergence(velocity, t, state[0])
    return _velocity_and_hutchinson_divergence(velocity, t, state[0], probe)

  (x1, integral), nfe = solve_ode(augmented, (x, jnp.zeros(x.shape[:1])), process.t_min, 1.0, solver,
                                  num_steps, rtol, atol, args=(probe, denoiser.labels))
  return gaussian_log_prob(x1, process.prior_std) + integral, nfe
