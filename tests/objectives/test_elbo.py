"""ELBO and IWAE against a linear-Gaussian model whose log p(x) and posterior are closed form.

p(z) = N(0, I_d), p(x | z) = N(W z + b, s^2 I_D). With W's columns orthogonal the exact posterior
q*(z | x) = N(A (x - b), Sigma), Sigma = (I + W^T W / s^2)^-1, A = Sigma W^T / s^2, is diagonal, so a
HierarchicalVAE with no hidden layers, a Gaussian decoder of fixed std s, and the right weights IS this
model with its exact posterior.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from gm_jax.models.decoders import Decoder
from gm_jax.models.vae import HierarchicalVAE, VAEConfig, kl_to_standard_normal
from gm_jax.objectives import elbo as elbo_lib
from gm_jax.train.rng import per_example_keys

D, d, S = 5, 2, 0.5


def _linear_gaussian():
  rng = np.random.default_rng(0)
  q, _ = np.linalg.qr(rng.normal(size=(D, d)))
  W = q * np.array([2.0, 0.7])  # orthogonal columns
  b = rng.normal(size=D)
  sigma = np.linalg.inv(np.eye(d) + W.T @ W / S**2)
  assert np.allclose(sigma, np.diag(np.diag(sigma)))
  A = sigma @ W.T / S**2
  return W, b, sigma, A


def _model_and_params(mean_shift=0.0, std_scale=1.0):
  W, b, sigma, A = _linear_gaussian()
  cfg = VAEConfig(x_shape=(D,), latent_dims=(d,), hidden=((),), decoder=Decoder("gaussian", fixed_std=S))
  model = HierarchicalVAE(cfg)
  params = model.init(jax.random.key(0), jnp.zeros((1, D)), jax.random.split(jax.random.key(0), 1), 1,
                      method=HierarchicalVAE.log_weights)["params"]
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  params = jax.tree.map(lambda a: a, params)
  params["q_z1"]["mean"] = {"kernel": f32(A.T), "bias": f32(-A @ b + mean_shift)}
  params["q_z1"]["log_std"] = {"kernel": jnp.zeros((D, d)),
                               "bias": f32(0.5 * np.log(np.diag(sigma)) + np.log(std_scale))}
  params["p_x_out"] = {"kernel": f32(W.T), "bias": f32(b)}
  return model, params, (W, b, sigma, A)


def _data(n=8):
  W, b, _, _ = _linear_gaussian()
  rng = np.random.default_rng(1)
  x = rng.normal(size=(n, d)) @ W.T + b + S * rng.normal(size=(n, D))
  log_px = multivariate_normal(b, W @ W.T + S**2 * np.eye(D)).logpdf(x)
  return jnp.asarray(x, jnp.float32), log_px


def _terms(model, params, x, k, seed=0):
  keys = per_example_keys(jax.random.key(seed), jnp.arange(x.shape[0]))
  return model.apply({"params": params}, x, keys, k, method=HierarchicalVAE.log_weights)


def test_elbo_with_the_exact_posterior_equals_log_px():
  model, params, (W, b, sigma, A) = _model_and_params()
  x, log_px = _data()
  # Monte Carlo KL: every sample's log w equals log p(x) when q is the exact posterior.
  parts = elbo_lib.elbo_terms(_terms(model, params, x, 16), kl="mc")
  np.testing.assert_allclose(parts["elbo"], np.broadcast_to(log_px, (16, 8)), atol=1e-4)
  # Analytic KL, with E_q[log p(x | z)] in closed form: -||x - W mu - b||^2 / 2s^2 - tr(W Sigma W^T)/2s^2 ...
  mu = (np.asarray(x) - b) @ A.T
  expected_recon = (-0.5 * (np.sum((np.asarray(x) - mu @ W.T - b) ** 2, -1) + np.trace(W @ sigma @ W.T)) / S**2
                    - D * np.log(S) - 0.5 * D * np.log(2 * np.pi))
  kl = kl_to_standard_normal(jnp.asarray(mu), jnp.asarray(0.5 * np.log(np.diag(sigma)))[None])
  np.testing.assert_allclose(expected_recon - np.asarray(kl), log_px, atol=1e-4)


def test_elbo_is_below_log_px_for_other_posteriors():
  x, log_px = _data()
  for shift, scale in [(0.3, 1.0), (0.0, 2.0), (-0.5, 0.5)]:
    model, params, _ = _model_and_params(shift, scale)
    parts = elbo_lib.elbo_terms(_terms(model, params, x, 4000), kl="analytic")
    mean_elbo = np.asarray(parts["elbo"]).mean(0)
    assert np.all(mean_elbo < log_px - 1e-3)


def test_iwae_increases_with_k_and_converges_to_log_px():
  model, params, _ = _model_and_params(mean_shift=0.4, std_scale=1.6)
  x, log_px = _data()
  log_w = lambda xx, keys, k: model.apply({"params": params}, xx, keys, k, method=HierarchicalVAE.log_weights)
  means = []
  for k in (1, 5, 50, 500):
    repeat = jax.jit(jax.vmap(lambda r: elbo_lib.iwae_estimate(
        log_w, x, per_example_keys(jax.random.key(r), jnp.arange(8)), k, k)))
    means.append(float(np.mean(repeat(jnp.arange(40)))))
  assert means == sorted(means), means  # non-decreasing in K on average
  assert means[0] < means[-1] - 0.05
  keys = per_example_keys(jax.random.key(99), jnp.arange(8))
  iwae_5000 = np.asarray(jax.jit(lambda kk: elbo_lib.iwae_estimate(log_w, x, kk, 5000, 500))(keys))
  np.testing.assert_array_less(np.abs(iwae_5000 - log_px), 0.05)


def test_chunked_estimate_does_not_depend_on_the_chunk_size():
  model, params, _ = _model_and_params(mean_shift=0.4, std_scale=1.6)
  x, _ = _data()
  log_w = lambda xx, keys, k: model.apply({"params": params}, xx, keys, k, method=HierarchicalVAE.log_weights)
  keys = per_example_keys(jax.random.key(5), jnp.arange(8))
  a = elbo_lib.iwae_estimate(log_w, x, keys, 400, 100)
  b = elbo_lib.iwae_estimate(log_w, x, keys, 400, 100)
  np.testing.assert_array_equal(a, b)
  with pytest.raises(ValueError, match="multiple of eval.iwae_chunk"):
    elbo_lib.iwae_estimate(log_w, x, keys, 450, 100)


def test_analytic_kl_matches_monte_carlo():
  mean = jnp.array([[0.5, -1.0, 2.0]])
  log_std = jnp.array([[-0.3, 0.4, 0.0]])
  z = mean + jnp.exp(log_std) * jax.random.normal(jax.random.key(0), (400_000, 3))
  log_q = jnp.sum(-0.5 * ((z - mean) / jnp.exp(log_std)) ** 2 - log_std - 0.5 * math.log(2 * math.pi), -1)
  log_p = jnp.sum(-0.5 * z**2 - 0.5 * math.log(2 * math.pi), -1)
  mc = float(jnp.mean(log_q - log_p))
  assert float(kl_to_standard_normal(mean, log_std)[0]) == pytest.approx(mc, abs=0.01)
