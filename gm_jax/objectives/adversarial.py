"""Adversarial objectives (seeds 000, 003, 004): the discriminator/critic D and the generator G play

  minimax          max_D E_p[log D(x)] + E_q[log(1 - D(G(z)))];  G minimizes E[log(1 - D(G(z)))] (saturating)
  non_saturating   D as minimax;  G minimizes -E[log D(G(z))]
  wgan             max_f E_p[f(x)] - E_q[f(G(z))] over 1-Lipschitz f, enforced by clipping the weights
  wgan_gp          the same with lambda E[(||grad f(x_hat)|| - 1)^2] at x_hat between real and fake
  hinge            D minimizes E[relu(1 - f(x))] + E[relu(1 + f(G(z)))];  G minimizes -E[f(G(z))]

D outputs a logit (no sigmoid), so D(x) = sigmoid(logit) and log D = -softplus(-logit). With the optimal
D* = p / (p + q), the minimax value is -2 log 2 + 2 JS(p || q).
Losses here are per example, to be averaged over the batch.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

LOSSES = ("minimax", "non_saturating", "wgan", "wgan_gp", "hinge")


def check_loss(kind: str) -> str:
  if kind not in LOSSES:
    raise ValueError(f"unknown objective.loss {kind!r}; use one of {LOSSES}")
  return kind


def discriminator_loss(kind: str, real_logits_B: jax.Array, fake_logits_B: jax.Array) -> jax.Array:
  """What D minimizes, per (real, fake) pair."""
  if kind in ("minimax", "non_saturating"):
    # -log D(x) - log(1 - D(G(z)))
    return jax.nn.softplus(-real_logits_B) + jax.nn.softplus(fake_logits_B)
  if kind in ("wgan", "wgan_gp"):
    return fake_logits_B - real_logits_B
  if kind == "hinge":
    return jax.nn.relu(1.0 - real_logits_B) + jax.nn.relu(1.0 + fake_logits_B)
  raise ValueError(check_loss(kind))


def generator_loss(kind: str, fake_logits_B: jax.Array) -> jax.Array:
  """What G minimizes, per fake sample."""
  if kind == "minimax":
    return -jax.nn.softplus(fake_logits_B)  # log(1 - D(G(z)))
  if kind == "non_saturating":
    return jax.nn.softplus(-fake_logits_B)  # -log D(G(z))
  if kind in ("wgan", "wgan_gp", "hinge"):
    return -fake_logits_B
  raise ValueError(check_loss(kind))


def gradient_penalty(critic: Callable[[jax.Array], jax.Array], real: jax.Array, fake: jax.Array,
                     key: jax.Array) -> jax.Array:
  """(||grad_x f(x_hat)||_2 - 1)^2 per example, x_hat = e * real + (1 - e) * fake, e ~ U(0, 1) per example.

  `critic` maps a batch to per-example scores and must not mix examples (no batch normalization)."""
  eps = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1))
  x_hat = eps * real + (1.0 - eps) * fake
  grads = jax.grad(lambda x: jnp.sum(critic(x)))(x_hat)
  norms = jnp.sqrt(jnp.sum(grads.reshape(grads.shape[0], -1) ** 2, axis=-1) + 1e-12)
  return (norms - 1.0) ** 2
