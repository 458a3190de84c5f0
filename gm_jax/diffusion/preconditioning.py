"""EDM's preconditioning (Karras et al. 2022, Table 1, "Ours"): a raw network F becomes the denoiser
D(x; s) = c_skip(s) x + c_out(s) F(c_in(s) x, c_noise(s)) of x = x_0 + s n, with
  c_in = 1 / sqrt(s^2 + sd^2),  c_skip = sd^2 / (s^2 + sd^2),  c_out = s sd / sqrt(s^2 + sd^2),
  c_noise = ln(s) / 4,
sd the data's standard deviation, so that F's inputs and its training target (x_0 - c_skip x) / c_out
have unit variance at every noise level. A process with alpha != 1 is read in the scaled variable
x_t / alpha, whose noise level is s = sigma / alpha (Karras et al.'s s(t)); D is an x0 prediction.
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp

from gm_jax.diffusion.processes import Process, expand


def coefficients(noise_level, sigma_data: float):
  """(c_skip, c_out, c_in, c_noise) at noise level s (any shape)."""
  s2, sd2 = noise_level**2, sigma_data**2
  return (sd2 / (s2 + sd2), noise_level * sigma_data / jnp.sqrt(s2 + sd2), 1.0 / jnp.sqrt(s2 + sd2),
          0.25 * jnp.log(noise_level))


def loss_weight(noise_level, sigma_data: float):
  """lambda(s) = (s^2 + sd^2) / (s sd)^2 = 1 / c_out^2: the x0 error's weight that makes F's effective
  loss ||F - target||^2 with unit weight."""
  return (noise_level**2 + sigma_data**2) / (noise_level * sigma_data) ** 2


def precondition(net: Callable, process: Process, sigma_data: float) -> Callable:
  """net(x, c_noise (B,), label) -> F, as (x_t, t, label) -> D, an x0 prediction."""

  def apply(x_t, t, label):
    alpha, sigma = process.alpha(t), process.sigma(t)
    c_skip, c_out, c_in, c_noise = coefficients(sigma / alpha, sigma_data)
    scaled = x_t / expand(alpha, x_t)
    return expand(c_skip, x_t) * scaled + expand(c_out, x_t) * net(expand(c_in, x_t) * scaled, c_noise, label)

  return apply
