"""ELBO and IWAE against linear-Gaussian models whose log p(x), posterior and ELBO are closed form.

One layer: p(z) = N(0, I_d), p(x | z) = N(W z + b, s^2 I_D). With W's columns orthogonal the exact posterior
q*(z | x) = N(A (x - b), Sigma), Sigma = (I + W^T W / s^2)^-1, A = Sigma W^T / s^2, is diagonal, so a
HierarchicalVAE with no hidden layers, a Gaussian decoder of fixed std s, and the right weights IS this
model with its exact posterior; shifting that posterior's mean or scaling its std gives a non-optimal one
whose ELBO is still closed form.

Two layers: p(z_2) = N(0, I), p(z_1 | z_2) = N(M z_2 + c, diag(s_1^2)) with M diagonal, p(x | z_1) as above.
log p(x) is the Gaussian with the marginal covariance W (M M^T + diag(s_1^2)) W^T + s^2 I, and both factors
of the exact posterior p(z_1 | x) p(z_2 | z_1) are diagonal Gaussians linear in their inputs.

The latents each sample drew are read off the modules they enter (tests.models.test_vae).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal, norm

from gm_jax.models.decoders import Decoder
from gm_jax.models.vae import HierarchicalVAE, VAEConfig, kl_to_standard_normal
from gm_jax.objectives import elbo as elbo_lib
from gm_jax.train.rng import per_example_keys
from tests.models.test_vae import log_weights_and_latents, random_params

D, d, S = 5, 2, 0.5
LOG_2PI = math.log(2 * math.pi)


def _linear_gaussian():
  rng = np.random.default_rng(0)
  q, _ = np.linalg.qr(rng.normal(size=(D, d)))
  W = q * np.array([2.0, 0.7])  # orthogonal columns
  b = rng.normal(size=D)
  sigma = np.linalg.inv(np.eye(d) + W.T @ W / S**2)
  assert np.allclose(sigma, np.diag(np.diag(sigma)))
  A = sigma @ W.T / S**2
  return W, b, sigma, A


def _init(cfg):
  model = HierarchicalVAE(cfg)
  return model, random_params(model, jnp.zeros((1, D)), jax.random.split(jax.random.key(0), 1))


def _dense(kernel, bias):
  return {"kernel": jnp.asarray(kernel, jnp.float32), "bias": jnp.asarray(bias, jnp.float32)}


def _model_and_params(mean_shift=0.0, std_scale=1.0):
  W, b, sigma, A = _linear_gaussian()
  model, params = _init(VAEConfig(x_shape=(D,), latent_dims=(d,), hidden=((),),
                                  decoder=Decoder("gaussian", fixed_std=S)))
  params["q_z1"]["mean"] = _dense(A.T, -A @ b + mean_shift)
  params["q_z1"]["log_std"] = _dense(np.zeros((D, d)), 0.5 * np.log(np.diag(sigma)) + np.log(std_scale))
  params["p_x_out"] = _dense(W.T, b)
  return model, params, (W, b, sigma, A)


def _data(n=8):
  W, b, _, _ = _linear_gaussian()
  rng = np.random.default_rng(1)
  x = rng.normal(size=(n, d)) @ W.T + b + S * rng.normal(size=(n, D))
  log_px = multivariate_normal(b, W @ W.T + S**2 * np.eye(D)).logpdf(x)
  return jnp.asarray(x, jnp.float32), log_px


def _keys(n, seed=0):
  return per_example_keys(jax.random.key(seed), jnp.arange(n))


def _terms(model, params, x, k, seed=0):
  return model.apply({"params": params}, x, _keys(x.shape[0], seed), k, method=HierarchicalVAE.log_weights)


def _gaussian_kl(mean_q, var_q, mean_p, var_p):
  """KL(N(mean_q, diag var_q) || N(mean_p, diag var_p)), summed over the last axis."""
  return 0.5 * np.sum(var_q / var_p + (mean_q - mean_p) ** 2 / var_p - 1.0 - np.log(var_q / var_p), axis=-1)


def _assert_standard_normal(eps):
  """The reparameterization noise (z - mean) / std, pooled: mean 0 and variance 1 within 5 standard errors."""
  n = eps.size
  assert abs(eps.mean()) < 5 / math.sqrt(n), eps.mean()
  assert abs(eps.var() - 1.0) < 5 * math.sqrt(2.0 / n), eps.var()


def _assert_mean_within_5_standard_errors(samples_KB, expected_B):
  samples_KB = np.asarray(samples_KB, np.float64)
  error = samples_KB.mean(0) - expected_B
  standard_error = samples_KB.std(0) / math.sqrt(samples_KB.shape[0])
  assert np.all(np.abs(error) < 5 * standard_error), (error, standard_error)


def test_elbo_with_the_exact_posterior_equals_log_px():
  model, params, (W, b, sigma, A) = _model_and_params()
  x, log_px = _data()
  # Monte Carlo KL: every sample's log w equals log p(x) when q is the exact posterior.
  parts = elbo_lib.elbo_terms(_terms(model, params, x, 16), kl="mc")
  np.testing.assert_allclose(parts["elbo"], np.broadcast_to(log_px, (16, 8)), atol=1e-4)
  # Analytic KL, with E_q[log p(x | z)] in closed form: -||x - W mu - b||^2 / 2s^2 - tr(W Sigma W^T)/2s^2 ...
  mu = (np.asarray(x) - b) @ A.T
  expected_recon = (-0.5 * (np.sum((np.asarray(x) - mu @ W.T - b) ** 2, -1)
                            + np.trace(W @ sigma @ W.T)) / S**2
                    - D * np.log(S) - 0.5 * D * np.log(2 * np.pi))
  kl = kl_to_standard_normal(jnp.asarray(mu), jnp.asarray(0.5 * np.log(np.diag(sigma)))[None])
  np.testing.assert_allclose(expected_recon - np.asarray(kl), log_px, atol=1e-4)


@pytest.mark.parametrize("shift,scale", [(0.3, 1.0), (0.0, 2.0), (-0.5, 0.5)])
def test_every_term_and_the_elbo_for_a_non_optimal_posterior(shift, scale):
  """q = N(m, diag v) with m = A (x - b) + shift, v = scale^2 diag(Sigma): each sample's terms equal the
  densities at the z it drew, and their mean over K = 2,000 samples is the closed-form ELBO
  E_q[log p(x | z)] - KL(q || p(z)), which lies below log p(x) by KL(q || q*)."""
  model, params, (W, b, sigma, A) = _model_and_params(shift, scale)
  x, _ = _data()
  k = 2000
  terms, (z,) = log_weights_and_latents(model, params, x, _keys(8), k)
  xn = np.asarray(x, np.float64)
  mean, std = (xn - b) @ A.T + shift, np.sqrt(np.diag(sigma)) * scale
  kl = _gaussian_kl(mean, std**2, 0.0, 1.0)
  expected = {"log_qz1": norm.logpdf(z, mean, std).sum(-1), "log_pz1": norm.logpdf(z).sum(-1),
              "log_px": norm.logpdf(xn, z @ W.T + b, S).sum(-1),
              "kl_top_analytic": np.broadcast_to(kl, (k, 8))}
  assert sorted(terms) == sorted(expected)
  for name, value in expected.items():
    np.testing.assert_allclose(terms[name], value, rtol=1e-5, atol=1e-4, err_msg=name)
  _assert_standard_normal((z - mean) / std)

  analytic, mc = elbo_lib.elbo_terms(terms, "analytic"), elbo_lib.elbo_terms(terms, "mc")
  log_w = expected["log_px"] + expected["log_pz1"] - expected["log_qz1"]
  np.testing.assert_allclose(mc["elbo"], log_w, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(elbo_lib.log_importance_weights(terms), log_w, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(mc["kl"], expected["log_qz1"] - expected["log_pz1"], rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(analytic["elbo"], expected["log_px"] - kl, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(analytic["kl1"], np.broadcast_to(kl, (k, 8)), rtol=1e-5)
  np.testing.assert_allclose(analytic["recon"], expected["log_px"], rtol=1e-5, atol=1e-4)

  recon = (-0.5 * (np.sum((xn - mean @ W.T - b) ** 2, -1) + np.sum(W**2 @ std**2)) / S**2
           - D * math.log(S) - 0.5 * D * LOG_2PI)
  elbo = recon - kl
  gap = _gaussian_kl(mean, std**2, (xn - b) @ A.T, np.diag(sigma))
  log_px = multivariate_normal(b, W @ W.T + S**2 * np.eye(D)).logpdf(xn)  # at the float32 data
  np.testing.assert_allclose(elbo + gap, log_px,
                             rtol=1e-10)  # the reference itself: log p(x) = ELBO + KL(q || q*)
  _assert_mean_within_5_standard_errors(analytic["elbo"], elbo)
  _assert_mean_within_5_standard_errors(mc["elbo"], elbo)


def test_iwae_increases_with_k():
  """IWAE_K on average over disjoint blocks of 20,000 weights: from the ELBO (K = 1) up towards log p(x) (its
  convergence: the two-layer test below)."""
  model, params, _ = _model_and_params(mean_shift=0.4, std_scale=1.6)
  x, _ = _data()
  log_w = elbo_lib.log_importance_weights(_terms(model, params, x, 20_000))
  means = []
  for k in (1, 5, 50, 500):
    blocks = log_w.reshape(-1, k, 8).transpose(1, 0, 2).reshape(k, -1)  # (K, blocks * B)
    means.append(np.asarray(elbo_lib.iwae_bound(blocks)).reshape(-1, 8).mean(0))
  means = np.array(means)
  assert np.all(np.diff(means, axis=0) > 0), means
  assert np.all(means[0] < means[-1] - 0.05)


def test_chunked_estimate_is_the_log_mean_of_every_samples_weight_whatever_the_chunk():
  """Sample j draws from fold_in(key_i, j); the estimate is log (1/N) sum over all N weights, an example's
  estimate depends on its own key only, and the chunk (a memory setting) does not change it (it did: each
  chunk drew its samples together from one key)."""
  model, params, _ = _model_and_params(mean_shift=0.4, std_scale=1.6)
  x, _ = _data()
  log_w = jax.jit(
      lambda xx, keys, k: model.apply({"params": params}, xx, keys, k, method=HierarchicalVAE.log_weights),
      static_argnums=2)
  keys = per_example_keys(jax.random.key(5), jnp.arange(8))
  estimate = jax.jit(lambda xx, kk, chunk: elbo_lib.iwae_estimate(log_w, xx, kk, 400, chunk),
                     static_argnums=2)
  reversed_batch = estimate(x[::-1], keys[::-1], 100)
  by_chunk = {chunk: np.asarray(estimate(x, keys, chunk)) for chunk in (400, 100, 8)}
  np.testing.assert_allclose(reversed_batch, by_chunk[100][::-1], rtol=1e-6)
  np.testing.assert_allclose(by_chunk[400], by_chunk[100], rtol=1e-6)
  np.testing.assert_allclose(by_chunk[8], by_chunk[100], rtol=1e-6)
  weights = np.concatenate([np.asarray(elbo_lib.log_importance_weights(
      log_w(x, jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, j), 1)), np.float64)
                            for j in range(400)])
  assert weights.shape == (400, 8)
  top = weights.max(0)
  np.testing.assert_allclose(by_chunk[100], top + np.log(np.mean(np.exp(weights - top), axis=0)), rtol=1e-6)
  with pytest.raises(ValueError, match="multiple of eval.iwae_chunk"):
    elbo_lib.iwae_estimate(log_w, x, keys, 450, 100)


def test_iwae_bound_is_the_log_mean_weight():
  log_w = np.random.default_rng(2).normal(size=(7, 3)) * 3.0
  expected = np.log(np.mean(np.exp(log_w), axis=0))
  np.testing.assert_allclose(elbo_lib.iwae_bound(jnp.asarray(log_w, jnp.float32)), expected, rtol=1e-5)
  np.testing.assert_allclose(elbo_lib.iwae_bound(jnp.asarray(log_w[:1], jnp.float32)), log_w[0], rtol=1e-6)


def test_analytic_kl_matches_monte_carlo():
  mean = jnp.array([[0.5, -1.0, 2.0]])
  log_std = jnp.array([[-0.3, 0.4, 0.0]])
  z = mean + jnp.exp(log_std) * jax.random.normal(jax.random.key(0), (400_000, 3))
  log_q = jnp.sum(-0.5 * ((z - mean) / jnp.exp(log_std)) ** 2 - log_std - 0.5 * math.log(2 * math.pi), -1)
  log_p = jnp.sum(-0.5 * z**2 - 0.5 * math.log(2 * math.pi), -1)
  mc = float(jnp.mean(log_q - log_p))
  assert float(kl_to_standard_normal(mean, log_std)[0]) == pytest.approx(mc, abs=0.01)
  # Near the prior (collapsed units) the closed form, against float64: 2 s^2 per unit for small s.
  log_std = np.array([[1e-4, -3e-4, 2e-3, 0.0]])
  expected = 0.5 * np.sum(np.expm1(2 * log_std) - 2 * log_std, -1)
  np.testing.assert_allclose(kl_to_standard_normal(jnp.zeros((1, 4)), jnp.asarray(log_std, jnp.float32)),
                             expected, rtol=1e-3)


# --- two stochastic layers ---------------------------------------------------------------------------

M_DIAG, C, S1 = np.array([1.5, -0.8]), np.array([0.3, -0.2]), np.array([0.6, 0.9])


def _two_layer(q1_shift=0.0, q2_scale=1.0):
  """The two-layer model, its exact log-marginal's mean and covariance, and its exact posterior's
  factors (A1, a1, v1): q(z_1 | x) = N(A1 x + a1, diag v1),
  (A2, a2, v2): q(z_2 | z_1) = N(A2 z_1 + a2, diag v2);
  the VAE's posterior has q1_shift added to the first mean and q2_scale times the second std."""
  W, b, _, _ = _linear_gaussian()
  M = np.diag(M_DIAG)
  cov_z1 = M @ M.T + np.diag(S1**2)  # the marginal of z_1
  cov_x = W @ cov_z1 @ W.T + S**2 * np.eye(D)
  mean_x = W @ C + b
  post1 = np.linalg.inv(np.linalg.inv(cov_z1) + W.T @ W / S**2)  # p(z_1 | x), by Bayes' rule for Gaussians
  A1, a1 = post1 @ W.T / S**2, post1 @ (np.linalg.solve(cov_z1, C) - W.T @ b / S**2)
  post2 = np.linalg.inv(np.eye(d) + M.T @ np.diag(S1**-2) @ M)  # p(z_2 | z_1)
  A2 = post2 @ M.T @ np.diag(S1**-2)
  a2 = -A2 @ C
  for cov in (post1, post2):
    assert np.allclose(cov, np.diag(np.diag(cov)))
  v1, v2 = np.diag(post1), np.diag(post2)

  model, params = _init(VAEConfig(x_shape=(D,), latent_dims=(d, d), hidden=((), ()),
                                  decoder=Decoder("gaussian", fixed_std=S)))
  params["q_z1"] = {"mean": _dense(A1.T, a1 + q1_shift),
                    "log_std": _dense(np.zeros((D, d)), 0.5 * np.log(v1))}
  params["q_z2"] = {"mean": _dense(A2.T, a2),
                    "log_std": _dense(np.zeros((d, d)), 0.5 * np.log(v2) + np.log(q2_scale))}
  params["p_z1"] = {"mean": _dense(M.T, C), "log_std": _dense(np.zeros((d, d)), np.log(S1))}
  params["p_x_out"] = _dense(W.T, b)
  reference = dict(W=W, b=b, M=M, mean_x=mean_x, cov_x=cov_x, A1=A1, a1=a1 + q1_shift, v1=v1, A2=A2, a2=a2,
                   v2=v2 * q2_scale**2)
  return model, params, reference


def _two_layer_data(ref, n=6):
  x = np.random.default_rng(3).multivariate_normal(ref["mean_x"], ref["cov_x"], size=n)
  return jnp.asarray(x, jnp.float32), multivariate_normal(ref["mean_x"], ref["cov_x"]).logpdf(x)


def _two_layer_reference_terms(ref, x, z1, z2):
  """Each term of log w at the drawn latents, in float64."""
  mean1 = x @ ref["A1"].T + ref["a1"]
  mean2 = z1 @ ref["A2"].T + ref["a2"]
  return {"log_qz1": norm.logpdf(z1, mean1, np.sqrt(ref["v1"])).sum(-1),
          "log_qz2": norm.logpdf(z2, mean2, np.sqrt(ref["v2"])).sum(-1),
          "log_pz2": norm.logpdf(z2).sum(-1),
          "log_pz1": norm.logpdf(z1, z2 @ ref["M"].T + C, S1).sum(-1),
          "log_px": norm.logpdf(x, z1 @ ref["W"].T + ref["b"], S).sum(-1),
          "kl_top_analytic": _gaussian_kl(mean2, ref["v2"], 0.0, 1.0)}, (mean1, mean2)


def test_two_layer_elbo_with_the_exact_posterior_equals_log_px():
  """With q = p(z_1 | x) p(z_2 | z_1), every sample's log w is log p(x) from the marginal covariance; with
  the top layer's KL analytic the per-sample ELBO varies, but its mean over 2,000 samples is log p(x)."""
  model, params, ref = _two_layer()
  x, log_px = _two_layer_data(ref)
  k = 2000
  terms, (z1, z2) = log_weights_and_latents(model, params, x, _keys(6), k)
  expected, (mean1, mean2) = _two_layer_reference_terms(ref, np.asarray(x, np.float64), z1, z2)
  assert sorted(terms) == sorted(expected)
  for name, value in expected.items():
    np.testing.assert_allclose(terms[name], value, rtol=1e-5, atol=2e-4, err_msg=name)
  _assert_standard_normal(np.concatenate([((z1 - mean1) / np.sqrt(ref["v1"])).ravel(),
                                          ((z2 - mean2) / np.sqrt(ref["v2"])).ravel()]))

  mc = elbo_lib.elbo_terms(terms, "mc")
  np.testing.assert_allclose(mc["elbo"], np.broadcast_to(log_px, (k, 6)), atol=2e-4)
  np.testing.assert_allclose(mc["kl"], mc["kl1"] + mc["kl2"], rtol=1e-5)
  analytic = elbo_lib.elbo_terms(terms, "analytic")
  np.testing.assert_allclose(analytic["kl1"], expected["log_qz1"] - expected["log_pz1"], rtol=1e-5, atol=2e-4)
  np.testing.assert_allclose(analytic["kl2"], expected["kl_top_analytic"], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(analytic["elbo"], expected["log_px"] - analytic["kl1"] - analytic["kl2"],
                             rtol=1e-5, atol=2e-4)
  _assert_mean_within_5_standard_errors(analytic["elbo"], log_px)


def _joint_posterior(A1, a1, v1, A2, a2, v2, x):
  """Mean (B, 2d) and covariance (2d, 2d) of (z_1, z_2) under N(A1 x + a1, diag v1)
  N(A2 z_1 + a2, diag v2)."""
  m1 = x @ A1.T + a1
  mean = np.concatenate([m1, m1 @ A2.T + a2], -1)
  V1 = np.diag(v1)
  cov = np.block([[V1, V1 @ A2.T], [A2 @ V1, A2 @ V1 @ A2.T + np.diag(v2)]])
  return mean, cov


def test_two_layer_non_optimal_posterior_elbo_and_iwae():
  """A shifted, widened posterior: the mean ELBO is log p(x) - KL(q(z_1, z_2 | x) || p(z_1, z_2 | x)) (two
  4-D Gaussians), and IWAE with 4,000 samples recovers log p(x) within 5 standard errors of its estimate
  (the delta method's std(w) / (sqrt(K) mean(w)), from an independent draw of weights)."""
  model, params, ref = _two_layer(q1_shift=0.15, q2_scale=1.4)
  _, _, exact = _two_layer()
  x, log_px = _two_layer_data(ref)
  xn = np.asarray(x, np.float64)
  mean_q, cov_q = _joint_posterior(ref["A1"], ref["a1"], ref["v1"], ref["A2"], ref["a2"], ref["v2"], xn)
  mean_p, cov_p = _joint_posterior(exact["A1"], exact["a1"], exact["v1"], exact["A2"], exact["a2"],
                                   exact["v2"], xn)
  inv_p = np.linalg.inv(cov_p)
  diff = mean_q - mean_p
  kl = 0.5 * (np.trace(inv_p @ cov_q) + np.einsum("bi,ij,bj->b", diff, inv_p, diff) - 2 * d
              + np.linalg.slogdet(cov_p)[1] - np.linalg.slogdet(cov_q)[1])
  assert np.all(kl > 0.4)  # far enough from the exact posterior to matter
  num = 4000
  terms = _terms(model, params, x, num, seed=1)
  _assert_mean_within_5_standard_errors(elbo_lib.elbo_terms(terms, "mc")["elbo"], log_px - kl)
  _assert_mean_within_5_standard_errors(elbo_lib.elbo_terms(terms, "analytic")["elbo"], log_px - kl)

  log_w = lambda xx, keys, k: model.apply({"params": params}, xx, keys, k, method=HierarchicalVAE.log_weights)
  estimate = np.asarray(jax.jit(lambda kk: elbo_lib.iwae_estimate(log_w, x, kk, num, 1000))(_keys(6)))
  w = np.asarray(elbo_lib.log_importance_weights(terms), np.float64)
  w = np.exp(w - w.max(0))
  standard_error = w.std(0) / (math.sqrt(num) * w.mean(0))
  assert np.all(np.abs(estimate - log_px) < 5 * standard_error), (estimate - log_px, standard_error)
  assert np.all(standard_error < 0.02)


def test_two_layer_ancestral_samples_have_the_marginal_of_x():
  """sample(): z_2 ~ N(0, I), z_1 ~ p(z_1 | z_2), x ~ p(x | z_1); 20,000 draws have the mean and covariance
  of N(W c + b, W (M M^T + diag(s_1^2)) W^T + s^2 I) within 5 standard errors."""
  model, params, ref = _two_layer()
  n = 20_000
  x = np.asarray(model.apply({"params": params}, jax.random.key(4), n, method=HierarchicalVAE.sample),
                 np.float64)
  assert x.shape == (n, D)
  mean, cov = ref["mean_x"], ref["cov_x"]
  var = np.diag(cov)
  assert np.all(np.abs(x.mean(0) - mean) < 5 * np.sqrt(var / n))
  cov_standard_error = np.sqrt((np.outer(var, var) + cov**2) / n)
  assert np.all(np.abs(np.cov(x.T) - cov) < 5 * cov_standard_error)
