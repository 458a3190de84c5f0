"""Every decoder's log p(x | out) against scipy for its label convention, its mean and its samples; the
level decoders are normalized distributions over their outcomes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from gm_jax.models.decoders import Decoder


def _log_logistic_bin(upper, lower):
  """log(F(upper) - F(lower)) for the standard logistic F, in float64 and stable in both tails."""
  lower_tail = upper + lower <= 0
  hi = np.where(lower_tail, stats.logistic.logcdf(upper), stats.logistic.logsf(lower))
  lo = np.where(lower_tail, stats.logistic.logcdf(lower), stats.logistic.logsf(upper))
  return hi + np.log1p(-np.exp(lo - hi))


def _reference_log_prob(dec, out, x):
  """log p(x | out) per dimension in float64 from scipy: x is {0, 1} (bernoulli), real (gaussian) or a level
  0..L-1 that stands for the value 2 x / (L - 1) - 1 on [-1, 1] (categorical, discretized_logistic)."""
  out, x = np.asarray(out, np.float64), np.asarray(x)
  if dec.kind == "bernoulli":
    return np.where(x == 1, special.log_expit(out[..., 0]), special.log_expit(-out[..., 0]))
  if dec.kind == "gaussian":
    std = dec.fixed_std if dec.fixed_std > 0 else np.exp(out[..., 1])
    return stats.norm.logpdf(x, out[..., 0], std)
  if dec.kind == "categorical":
    return np.take_along_axis(special.log_softmax(out, -1), x[..., None], -1)[..., 0]
  mean, scale = out[..., 0], np.exp(np.maximum(out[..., 1], -7.0))  # log-scales below -7 are clamped
  half = 1.0 / (dec.num_levels - 1)
  centre = 2.0 * x / (dec.num_levels - 1) - 1.0
  upper, lower = (centre + half - mean) / scale, (centre - half - mean) / scale
  first, last = x == 0, x == dec.num_levels - 1
  upper = np.where(last, np.inf, upper)  # the edge bins take the tails
  lower = np.where(first, -np.inf, lower)
  return _log_logistic_bin(upper, lower)


DECODERS = {"bernoulli": Decoder("bernoulli"), "gaussian_fixed": Decoder("gaussian", fixed_std=0.3),
            "gaussian_learned": Decoder("gaussian"), "categorical": Decoder("categorical", num_levels=5),
            "logistic_5": Decoder("discretized_logistic", num_levels=5),
            "logistic_256": Decoder("discretized_logistic", num_levels=256),
            "logistic_2": Decoder("discretized_logistic", num_levels=2)}


def _outputs_and_data(dec, rng):
  """Decoder outputs (3, 6, P) and data (3, 6) covering every level, the edge bins and sharp or far-off
  distributions."""
  out = rng.normal(size=(3, 6, dec.params_per_dim)) * 2.0
  if dec.kind == "bernoulli":
    x = rng.integers(0, 2, size=(3, 6)).astype(np.float32)
    out[0, :, 0] = [-30.0, -8.0, 0.0, 0.5, 8.0, 30.0]
  elif dec.kind == "gaussian":
    x = rng.normal(size=(3, 6)) * 1.5
  else:
    x = rng.integers(0, dec.num_levels, size=(3, 6))
    x[0] = np.arange(6) % dec.num_levels
    x[1, :2] = [0, dec.num_levels - 1]
  if dec.kind == "discretized_logistic":
    out[0, :, 1] = [-9.0, -7.0, -3.0, -1.0, 0.0, 1.5]  # includes log-scales below the clamp
    out[0, :, 0] = [0.3, -1.0, 1.0, 2.5, -4.0, 0.0]
    out[1, :2] = [[0.0, -3.0], [0.0, -3.0]]  # edge bins far from the mean: deep in the tails
    out[2, :2] = [[50.0, 5.0], [-50.0, 10.0]]  # wide and far off: a bin's two ends round alike
    x[2, :2] = [dec.num_levels // 2, 1]
  return out.astype(np.float32), x


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_log_prob_matches_scipy(name):
  dec = DECODERS[name]
  out, x = _outputs_and_data(dec, np.random.default_rng(0))
  expected = _reference_log_prob(dec, out, x)
  per_dim = np.asarray(dec.log_prob_per_dim(jnp.asarray(out), jnp.asarray(x)), np.float64)
  np.testing.assert_allclose(per_dim, expected, rtol=1e-5, atol=2e-5)
  np.testing.assert_allclose(dec.log_prob(jnp.asarray(out), jnp.asarray(x)), expected.sum(-1), rtol=1e-5,
                             atol=1e-4)


def test_sizes_and_kinds():
  assert {name: (d.params_per_dim, d.is_discrete) for name, d in DECODERS.items()} == {
      "bernoulli": (1, True), "gaussian_fixed": (1, False), "gaussian_learned": (2, False),
      "categorical": (5, True), "logistic_5": (2, True), "logistic_256": (2, True), "logistic_2": (2, True)}


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_mean_and_samples_follow_the_distribution(name):
  """mean() is E[x | out] in the data's representation, and sample() draws from the same distribution:
  over 2,000 draws per entry, the sample mean and variance lie within 5 standard errors of the exact ones."""
  dec = DECODERS[name]
  out, _ = _outputs_and_data(dec, np.random.default_rng(1))
  out = out[1:]
  if dec.kind == "gaussian":
    std = dec.fixed_std if dec.fixed_std > 0 else np.exp(out[..., 1].astype(np.float64))
    mean, var, fourth = out[..., 0].astype(np.float64), std**2, 3 * std**4
  else:
    values = np.arange(2 if dec.kind == "bernoulli" else dec.num_levels)
    p = np.exp(np.stack([_reference_log_prob(dec, out, np.full(out.shape[:-1], k)) for k in values], -1))
    mean = p @ values
    var = np.sum(p * (values - mean[..., None]) ** 2, -1)
    fourth = np.sum(p * (values - mean[..., None]) ** 4, -1)
  np.testing.assert_allclose(jax.jit(dec.mean)(jnp.asarray(out)), mean, rtol=1e-5, atol=1e-5)
  draws = 2000
  tiled = jnp.broadcast_to(jnp.asarray(out), (draws,) + out.shape).reshape(-1, *out.shape[1:])
  samples = np.asarray(jax.jit(dec.sample)(jax.random.key(2), tiled), np.float64)
  assert samples.shape == (draws * out.shape[0],) + out.shape[1:-1]
  samples = samples.reshape((draws,) + out.shape[:-1])
  if dec.is_discrete:
    np.testing.assert_array_equal(samples, np.round(samples))
  assert np.all(np.abs(samples.mean(0) - mean) <= 5 * np.sqrt(var / draws) + 1e-6)
  var_standard_error = np.sqrt(np.maximum(fourth - var**2, 0) / draws)
  assert np.all(np.abs(samples.var(0) - var) <= 5 * var_standard_error + 1e-3 * var + 1e-6)


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


def test_bad_decoders_are_clear_errors():
  with pytest.raises(ValueError, match="unknown decoder 'poisson'"):
    Decoder("poisson")
  for kind in ("categorical", "discretized_logistic"):
    with pytest.raises(ValueError, match=f"the {kind} decoder needs num_levels >= 2"):
      Decoder(kind, num_levels=1)
