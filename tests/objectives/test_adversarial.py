"""Adversarial objectives against their theory: D* = p / (p + q), the minimax value at D*, every loss in
closed form, the gradient penalty of linear and quadratic critics, weight clipping, and the saturating
generator loss's vanishing gradient."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.scipy.stats import norm
from scipy import special

from gm_jax.objectives import adversarial
from gm_jax.train.defaults import base_config
from gm_jax.train.optim import make_optimizer
from tests.conftest import RUNTIME_BOUND

P = (0.0, 1.0)  # data: N(0, 1)
Q = (1.5, 0.7)  # generator: N(1.5, 0.7^2)


def _log_p(x):
  return norm.logpdf(x, *P)


def _log_q(x):
  return norm.logpdf(x, *Q)


class _Disc(nn.Module):
  @nn.compact
  def __call__(self, x):
    h = nn.tanh(nn.Dense(64)(x[:, None]))
    h = nn.tanh(nn.Dense(64)(h))
    return nn.Dense(1)(h)[:, 0]


def test_discriminator_trained_alone_converges_to_d_star():
  disc = _Disc()
  params = disc.init(jax.random.key(0), jnp.zeros(4))
  tx = optax.adam(3e-3)

  def step(carry, key):
    params, opt_state = carry
    k1, k2 = jax.random.split(key)
    real = P[0] + P[1] * jax.random.normal(k1, (1024,))
    fake = Q[0] + Q[1] * jax.random.normal(k2, (1024,))
    loss_fn = lambda p: jnp.mean(adversarial.discriminator_loss("minimax", disc.apply(p, real),
                                                                disc.apply(p, fake)))
    grads = jax.grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state)
    return (optax.apply_updates(params, updates), opt_state), None

  train = jax.jit(lambda c: jax.lax.scan(step, c, jax.random.split(jax.random.key(1), 3000)),
                  compiler_options=RUNTIME_BOUND)
  (params, _), _ = train((params, tx.init(params)))
  grid = jnp.linspace(-2.0, 3.0, 201)
  d = jax.nn.sigmoid(disc.apply(params, grid))
  d_star = jnp.exp(_log_p(grid)) / (jnp.exp(_log_p(grid)) + jnp.exp(_log_q(grid)))
  assert float(jnp.max(jnp.abs(d - d_star))) < 0.05


def test_minimax_value_at_d_star_is_minus_2log2_plus_2js():
  key_p, key_q = jax.random.split(jax.random.key(0))
  real = P[0] + P[1] * jax.random.normal(key_p, (2_000_000,))
  fake = Q[0] + Q[1] * jax.random.normal(key_q, (2_000_000,))
  optimal_logit = lambda x: _log_p(x) - _log_q(x)  # sigmoid(log p - log q) = p / (p + q)
  value = -float(jnp.mean(adversarial.discriminator_loss("minimax", optimal_logit(real),
                                                         optimal_logit(fake))))
  # JS by quadrature, independently of the loss code.
  x = np.linspace(-12, 12, 400_001)
  p, q = np.exp(np.asarray(_log_p(x), np.float64)), np.exp(np.asarray(_log_q(x), np.float64))
  m = (p + q) / 2
  dx = x[1] - x[0]
  js = 0.5 * np.sum(p * np.log(p / m)) * dx + 0.5 * np.sum(q * np.log(q / m)) * dx
  assert value == pytest.approx(-2 * math.log(2) + 2 * js, abs=3e-3)


def test_gradient_penalty_of_a_linear_critic():
  w = jnp.array([0.3, -1.2, 2.0])
  critic = lambda x: x @ w + 0.7
  real = jax.random.normal(jax.random.key(0), (5, 3))
  fake = jax.random.normal(jax.random.key(1), (5, 3))
  gp = adversarial.gradient_penalty(critic, real, fake, jax.random.key(2))
  np.testing.assert_allclose(gp, (float(jnp.linalg.norm(w)) - 1.0) ** 2, rtol=1e-5)


def test_weights_stay_in_the_clip_range_after_an_update():
  cfg = base_config().optim
  cfg.update(name="rmsprop", learning_rate=5e-2, decay=0.99, eps=1e-8, schedule="constant", weight_clip=0.01)
  tx, _ = make_optimizer(cfg, 10)
  params = {"w": jax.random.normal(jax.random.key(0), (20, 20)) * 0.005, "b": jnp.zeros(20)}
  state = tx.init(params)
  for i in range(3):
    grads = jax.tree.map(lambda a: 100 * jax.random.normal(jax.random.key(i + 1), a.shape), params)
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    for leaf in jax.tree.leaves(params):
      assert float(jnp.max(jnp.abs(leaf))) <= 0.01 + 1e-7
  assert float(jnp.max(jnp.abs(params["w"]))) == pytest.approx(0.01)  # the constraint is active


def test_saturating_generator_loss_vanishes_where_the_discriminator_wins():
  """When D confidently rejects fakes (logit -> -inf), log(1 - D) saturates; -log D does not."""
  confident_reject = jnp.array([-10.0])
  sat = jax.grad(lambda l: adversarial.generator_loss("minimax", l).sum())(confident_reject)
  non_sat = jax.grad(lambda l: adversarial.generator_loss("non_saturating", l).sum())(confident_reject)
  assert abs(float(sat[0])) < 1e-4 and float(non_sat[0]) == pytest.approx(-1.0, abs=1e-4)


@pytest.mark.parametrize("kind", adversarial.LOSSES)
def test_discriminator_losses_against_their_closed_forms(kind):
  """-log D(x) - log(1 - D(G(z))) with D = sigmoid(logit) (minimax and non-saturating: the same D), f(G(z)) -
  f(x) for the critics, relu(1 - f(x)) + relu(1 + f(G(z))) for hinge; logits out to +-30."""
  real = np.array([-30.0, -3.0, -0.5, 0.0, 0.7, 1.0, 4.0, 30.0])
  fake = np.array([30.0, 2.0, -1.0, 0.0, 0.3, -1.0, -4.0, -30.0])
  expected = {"minimax": -special.log_expit(real) - special.log_expit(-fake),
              "wgan": fake - real, "hinge": np.maximum(0.0, 1.0 - real) + np.maximum(0.0, 1.0 + fake)}
  expected["non_saturating"], expected["wgan_gp"] = expected["minimax"], expected["wgan"]
  got = adversarial.discriminator_loss(kind, jnp.asarray(real, jnp.float32), jnp.asarray(fake, jnp.float32))
  np.testing.assert_allclose(got, expected[kind], rtol=1e-6, atol=1e-6)


def test_unknown_loss_is_a_clear_error():
  with pytest.raises(ValueError, match="unknown objective.loss 'lsgan'"):
    adversarial.check_loss("lsgan")


def test_gradient_penalty_of_a_quadratic_critic():
  """f(x) = ||x||^2 / 2 has gradient x, so the penalty is (||x_hat|| - 1)^2 at the interpolate x_hat;
  with real == fake, x_hat is that point whatever e is drawn."""
  critic = lambda x: 0.5 * jnp.sum(x**2, axis=-1)
  real = jax.random.normal(jax.random.key(0), (6, 3)) * jnp.arange(1.0, 7.0)[:, None]
  gp = adversarial.gradient_penalty(critic, real, real, jax.random.key(2))
  np.testing.assert_allclose(gp, (np.linalg.norm(np.asarray(real), axis=-1) - 1.0) ** 2, rtol=1e-5)
  fake = jnp.zeros_like(real)
  e = np.asarray(jax.random.uniform(jax.random.key(2), (6, 1)))  # the per-example interpolation weight
  gp = adversarial.gradient_penalty(critic, real, fake, jax.random.key(2))
  np.testing.assert_allclose(gp, (e[:, 0] * np.linalg.norm(np.asarray(real), axis=-1) - 1.0) ** 2, rtol=1e-5)


@pytest.mark.parametrize("kind", ["minimax", "non_saturating", "wgan", "wgan_gp", "hinge"])
def test_generator_losses_against_their_closed_forms(kind):
  logits = np.array([-3.0, -0.5, 0.0, 0.7, 4.0], np.float32)
  d = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))  # D(G(z)) for the probabilistic losses
  expected = {"minimax": np.log(1.0 - d), "non_saturating": -np.log(d), "wgan": -logits, "wgan_gp": -logits,
              "hinge": -logits}[kind]
  np.testing.assert_allclose(adversarial.generator_loss(kind, jnp.asarray(logits)), expected, rtol=1e-5)
