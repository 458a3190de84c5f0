import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from gm_jax.models.gmm import GaussianMixture, kmeans_plus_plus


def test_log_prob_matches_scipy_full_covariance_mixture():
  model = GaussianMixture(num_components=3, dim=2)
  params = model.init(jax.random.key(0), jnp.zeros((1, 2)))["params"]
  rng = np.random.default_rng(0)
  params = dict(params, logits=jnp.asarray(rng.normal(size=3), jnp.float32),
                means=jnp.asarray(rng.normal(size=(3, 2)), jnp.float32),
                raw_scale=jnp.asarray(rng.normal(size=(3, 2, 2)), jnp.float32))
  x = rng.normal(size=(50, 2)).astype(np.float32)
  got = np.asarray(model.apply({"params": params}, x))
  L = np.asarray(model.apply({"params": params}, method=GaussianMixture.scale_tril), np.float64)
  w = np.exp(params["logits"]) / np.exp(params["logits"]).sum()
  expected = np.log(sum(w[k] * multivariate_normal(params["means"][k], L[k] @ L[k].T).pdf(x)
                        for k in range(3)))
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_samples_follow_the_mixture():
  """Three separated components of unequal weight: each sample's nearest mean names its component, whose
  share is its weight and whose samples have its mean and covariance."""
  model = GaussianMixture(num_components=3, dim=2)
  params = model.init(jax.random.key(0), jnp.zeros((1, 2)))["params"]
  means = np.array([[1.0, -2.0], [15.0, 0.0], [-12.0, 10.0]], np.float32)
  params = dict(params, logits=jnp.array([0.0, 1.0, -0.5]), means=jnp.asarray(means),
                raw_scale=jnp.array([[[0.5, 0.0], [0.3, 0.2]], [[0.1, 0.0], [-0.2, 0.4]],
                                     [[-0.3, 0.0], [0.1, 0.0]]]))
  n = 300_000
  x = np.asarray(model.apply({"params": params}, jax.random.key(1), n, method=GaussianMixture.sample))
  L = np.asarray(model.apply({"params": params}, method=GaussianMixture.scale_tril), np.float64)
  logits = np.asarray(params["logits"], np.float64)
  weights = np.exp(logits) / np.sum(np.exp(logits))
  component = np.argmin(((x[:, None] - means[None]) ** 2).sum(-1), axis=1)
  for k in range(3):
    share = np.mean(component == k)
    assert share == pytest.approx(weights[k], abs=5 * np.sqrt(weights[k] * (1 - weights[k]) / n))
    np.testing.assert_allclose(x[component == k].mean(0), means[k], atol=0.01)
    np.testing.assert_allclose(np.cov(x[component == k].T), L[k] @ L[k].T, atol=0.01)


def test_kmeans_plus_plus_picks_one_centre_per_separated_cluster():
  centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], np.float32)
  x = np.repeat(centres, 50, axis=0) + np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32) * 0.1
  chosen = np.asarray(kmeans_plus_plus(jax.random.key(0), jnp.asarray(x), 4))
  nearest = np.argmin(((chosen[:, None] - centres[None]) ** 2).sum(-1), axis=1)
  assert sorted(nearest) == [0, 1, 2, 3]
