"""Every discrete decoder is a normalized distribution over its outcomes; the Gaussian over the reals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.models.decoders import Decoder


@pytest.mark.parametrize("kind,levels", [("categorical", 17), ("discretized_logistic", 17),
                                         ("discretized_logistic", 256), ("discretized_logistic", 2)])
def test_level_decoders_sum_to_one(kind, levels):
  dec = Decoder(kind, num_levels=levels)
  out = jax.random.normal(jax.random.key(0), (3, 5, dec.params_per_dim)) * 3.0
  # Extreme parameters too: a very sharp logistic, and means outside [-1, 1].
  if kind == "discretized_logistic":
    out = out.at[0, 0].set(jnp.array([0.3, -7.0])).at[0, 1].set(jnp.array([5.0, 0.0]))
  per_level = jnp.stack([dec.log_prob_per_dim(out, jnp.full((3, 5), k)) for k in range(levels)], axis=-1)
  np.testing.assert_allclose(np.exp(np.asarray(per_level, np.float64)).sum(-1), 1.0, atol=1e-5)
  np.testing.assert_allclose(per_level, dec.level_log_probs(out), atol=1e-5)


def test_bernoulli_sums_to_one():
  dec = Decoder("bernoulli")
  out = jax.random.normal(jax.random.key(1), (4, 6, 1)) * 5
  total = jnp.exp(dec.log_prob_per_dim(out, jnp.zeros((4, 6)))) + jnp.exp(dec.log_prob_per_dim(out, jnp.ones((4, 6))))
  np.testing.assert_allclose(total, 1.0, atol=1e-6)


@pytest.mark.parametrize("fixed_std", [0.0, 0.3])
def test_gaussian_integrates_to_one(fixed_std):
  dec = Decoder("gaussian", fixed_std=fixed_std)
  out = jnp.array([[[0.4, np.log(0.3)]]])[..., :dec.params_per_dim]
  grid = jnp.linspace(-4, 5, 20001)
  dens = jnp.exp(dec.log_prob_per_dim(jnp.broadcast_to(out, (grid.size, 1, dec.params_per_dim)), grid[:, None]))
  assert float(np.sum(np.asarray(dens, np.float64)) * (9.0 / 20000)) == pytest.approx(1.0, abs=1e-4)


def test_discretized_logistic_matches_the_cdf_difference():
  dec = Decoder("discretized_logistic", num_levels=5)
  mean, log_scale = 0.1, np.log(0.4)
  out = jnp.array([[[mean, log_scale]]])
  sig = lambda t: 1 / (1 + np.exp(-t))
  centre = 2 * 2 / 4 - 1  # level 2 on [-1, 1]
  expected = np.log(sig((centre + 0.25 - mean) / 0.4) - sig((centre - 0.25 - mean) / 0.4))
  assert float(dec.log_prob_per_dim(out, jnp.array([[2]]))[0, 0]) == pytest.approx(expected, abs=1e-6)


def test_unknown_decoder_is_a_clear_error():
  with pytest.raises(ValueError, match="unknown decoder 'poisson'"):
    Decoder("poisson")
