from __future__ import annotations

import inspect

import jax
import numpy as np
import prdc
import pytest
import scipy.linalg

from gm_jax.evaluation import quality_report, sample_quality
from gm_jax.evaluation.sample_quality import (GaussianStatistics, frechet_distance,
                                              frechet_distance_from_data,
                                              frechet_distance_from_statistics, kernel_inception_distance,
                                              precision_recall_density_coverage)
from gm_jax.train.defaults import base_config


def _gaussian_fd(mu1_D: np.ndarray, cov1_DD: np.ndarray, mu2_D: np.ndarray, cov2_DD: np.ndarray) -> float:
  """||mu1 - mu2||^2 + tr(S1 + S2 - 2 sqrtm(S1 S2)), the classic pytorch-fid formula."""
  covmean_DD = scipy.linalg.sqrtm(cov1_DD @ cov2_DD)
  diff_D = mu1_D - mu2_D
  return float(diff_D @ diff_D + np.trace(cov1_DD) + np.trace(cov2_DD) - 2 * np.trace(covmean_DD.real))


def _fd_sqrtm_reference(a_ND: np.ndarray, b_MD: np.ndarray) -> float:
  return _gaussian_fd(a_ND.mean(0), np.cov(a_ND, rowvar=False), b_MD.mean(0), np.cov(b_MD, rowvar=False))


def _with_moments(rng: np.random.Generator, n: int, mu_D: np.ndarray, cov_DD: np.ndarray) -> np.ndarray:
  """n samples with sample mean exactly mu and unbiased sample covariance exactly cov (whiten, recolour)."""
  z_ND = rng.normal(size=(n, len(mu_D)))
  z_ND -= z_ND.mean(0)
  z_ND = scipy.linalg.solve_triangular(np.linalg.cholesky(np.cov(z_ND, rowvar=False)), z_ND.T, lower=True).T
  return z_ND @ np.linalg.cholesky(cov_DD).T + mu_D


def _random_spd(rng: np.random.Generator, dim: int) -> np.ndarray:
  a_DD = rng.normal(size=(dim, dim))
  return a_DD @ a_DD.T / dim + 0.1 * np.eye(dim)


def _collinear(rng: np.random.Generator, n: int) -> np.ndarray:
  x_ND = rng.normal(size=(n, 8))
  return np.concatenate([x_ND, x_ND[:, :2], 2 * x_ND[:, 3:4]], axis=1)  # D = 11, rank 8


def test_frechet_distance_of_a_set_with_itself_is_zero():
  rng = np.random.default_rng(0)
  for x_ND in (rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16)) + 3.0,  # full rank
               rng.normal(size=(20, 64)) * 5.0,  # N < D
               _collinear(rng, 100)):
    scale = np.trace(np.cov(x_ND, rowvar=False))
    assert abs(frechet_distance(x_ND, x_ND)) < 1e-8 * scale
    assert abs(frechet_distance(x_ND, x_ND[::-1])) < 1e-8 * scale  # row order does not matter


def test_frechet_distance_equals_the_closed_form_for_prescribed_moments():
  rng = np.random.default_rng(1)
  dim = 6
  mu1_D, mu2_D = rng.normal(size=dim), rng.normal(size=dim)
  cov1_DD, cov2_DD = _random_spd(rng, dim), _random_spd(rng, dim)
  x1_ND, x2_MD = _with_moments(rng, 50, mu1_D, cov1_DD), _with_moments(rng, 80, mu2_D, cov2_DD)
  np.testing.assert_allclose(np.cov(x1_ND, rowvar=False), cov1_DD, atol=1e-12)
  expected = _gaussian_fd(mu1_D, cov1_DD, mu2_D, cov2_DD)
  assert frechet_distance(x1_ND, x2_MD) == pytest.approx(expected, rel=1e-10)

  # Commuting (diagonal) covariances: the trace term is sum (sqrt(s1) - sqrt(s2))^2.
  s1_D, s2_D = rng.uniform(0.1, 3.0, dim), rng.uniform(0.1, 3.0, dim)
  x1_ND, x2_MD = _with_moments(rng, 40, mu1_D, np.diag(s1_D)), _with_moments(rng, 30, mu2_D, np.diag(s2_D))
  by_hand = np.sum((mu1_D - mu2_D) ** 2) + np.sum((np.sqrt(s1_D) - np.sqrt(s2_D)) ** 2)
  assert frechet_distance(x1_ND, x2_MD) == pytest.approx(by_hand, rel=1e-10)


@pytest.mark.parametrize("bad", ["negative_eigenvalue", "asymmetric"])
def test_frechet_distance_refuses_a_matrix_that_is_no_covariance(bad):
  """A non-PSD or asymmetric matrix was clipped and symmetrized into some covariance without a word; a
  covariance rounded to float32 (rank-deficient, so eigenvalues at zero) still passes."""
  rng = np.random.default_rng(4)
  cov_DD = _random_spd(rng, 5)
  mu_D = np.zeros(5)
  wrong_DD = cov_DD - 2 * np.linalg.eigvalsh(cov_DD)[0] * np.eye(5) if bad == "negative_eigenvalue" else (
      cov_DD + np.triu(np.ones((5, 5)), 1))
  with pytest.raises(ValueError, match="cov_b is not a covariance"):
    sample_quality.gaussian_frechet_distance(mu_D, cov_DD, mu_D, wrong_DD)
  rounded_DD = np.cov(rng.normal(size=(3, 5)), rowvar=False).astype(np.float32)  # rank 2
  assert sample_quality.gaussian_frechet_distance(mu_D, rounded_DD, mu_D, rounded_DD) == pytest.approx(
      0.0, abs=1e-6)


@pytest.mark.parametrize("case", ["full_rank", "n_below_d", "few_vs_many", "collinear"])
def test_frechet_distance_matches_sqrtm_reference(case):
  rng = np.random.default_rng(2)
  if case == "full_rank":
    a_ND, b_MD = rng.normal(size=(400, 12)) @ rng.normal(size=(12, 12)) + 1.0, rng.normal(size=(300, 12)) * 2
  elif case == "n_below_d":
    a_ND, b_MD = rng.normal(size=(20, 64)) @ rng.normal(size=(64, 64)), rng.normal(size=(30, 64)) + 0.5
  elif case == "few_vs_many":
    a_ND, b_MD = rng.normal(size=(10, 32)) + 1.0, rng.normal(size=(200, 32)) * 1.5
  else:
    a_ND, b_MD = _collinear(rng, 100), rng.normal(size=(120, 11)) + 0.5
  fd = frechet_distance(a_ND, b_MD)
  # The two routes, each the other's independent reference: covariances' eigendecompositions, and the
  # singular values of the centred data's N x M product (what frechet_distance takes for few samples).
  by_covariances = frechet_distance_from_statistics(GaussianStatistics.from_features(a_ND),
                                                    GaussianStatistics.from_features(b_MD))
  by_data = frechet_distance_from_data(a_ND, b_MD)
  assert by_data == pytest.approx(by_covariances, rel=1e-12)
  assert fd in (by_covariances, by_data)
  # scipy's sqrtm of the singular S_a S_b takes square roots of its eps-sized zero eigenvalues, an error of
  # about sqrt(eps) relative; with full rank it is as exact as the two routes.
  with np.errstate(all="ignore"):
    assert fd == pytest.approx(_fd_sqrtm_reference(a_ND, b_MD), rel=1e-12 if case == "full_rank" else 1e-7)


def test_few_samples_of_many_features_take_the_data_route(monkeypatch):
  taken = []
  monkeypatch.setattr(sample_quality, "_frechet_distance_of_checked_data",
                      lambda a, b: taken.append(a.shape) or 0.0)
  rng = np.random.default_rng(5)
  frechet_distance(rng.normal(size=(8, 2048)), rng.normal(size=(4, 2048)))  # a quick FID's shapes
  frechet_distance(rng.normal(size=(300, 8)), rng.normal(size=(200, 8)))
  frechet_distance(rng.normal(size=(4096, 512)), rng.normal(size=(4096, 512)))
  assert taken == [(8, 2048)]


def test_streaming_statistics_equal_one_pass():
  rng = np.random.default_rng(3)
  # A mean far above the spread: subtracting n mu mu^T from a sum of outer products would lose ~12 digits.
  x_ND = rng.normal(size=(500, 10)) @ rng.normal(size=(10, 10)) + 1e6
  y_MD = rng.normal(size=(300, 10)) + 1e6
  stats = GaussianStatistics(10)
  start = 0
  for size in (1, 7, 0, 150, 42, 300):
    stats.update(x_ND[start:start + size])
    start += size
  assert stats.count == 500
  np.testing.assert_allclose(stats.mean, x_ND.mean(0), rtol=1e-14)
  np.testing.assert_allclose(stats.cov, np.cov(x_ND - 1e6, rowvar=False), rtol=1e-9, atol=1e-9)
  fd = frechet_distance(x_ND, y_MD)
  streamed = frechet_distance_from_statistics(stats, GaussianStatistics.from_features(y_MD))
  assert streamed == pytest.approx(fd, rel=1e-9)

  merged = GaussianStatistics.from_features(x_ND[:123]).merge(GaussianStatistics.from_features(x_ND[123:]))
  one_pass = GaussianStatistics.from_features(x_ND)
  assert merged.count == one_pass.count
  np.testing.assert_allclose(merged.mean, one_pass.mean, rtol=1e-14)
  np.testing.assert_allclose(merged.cov, one_pass.cov, rtol=1e-9, atol=1e-9)


def test_statistics_npz_round_trip(tmp_path):
  rng = np.random.default_rng(4)
  x_ND, y_MD = rng.normal(size=(200, 5)), rng.normal(size=(100, 5)) + 0.3
  path = tmp_path / "reference_stats.npz"
  GaussianStatistics.from_features(x_ND[:150]).save(path)
  with np.load(path) as data:
    assert sorted(data.files) == ["count", "mu", "sigma"]
    np.testing.assert_allclose(data["sigma"], np.cov(x_ND[:150], rowvar=False), rtol=1e-12)
  loaded = GaussianStatistics.load(path)
  assert loaded.count == 150
  np.testing.assert_allclose(loaded.mean, x_ND[:150].mean(0), rtol=1e-14)
  # The count comes back too, so cached statistics keep accumulating correctly.
  loaded.update(x_ND[150:])
  assert frechet_distance_from_statistics(loaded, GaussianStatistics.from_features(y_MD)) == pytest.approx(
      frechet_distance(x_ND, y_MD), rel=1e-12)
  # Saved under a name without .npz, they load from that very name (numpy's savez appended .npz).
  GaussianStatistics.from_features(x_ND).save(tmp_path / "reference_stats")
  assert GaussianStatistics.load(tmp_path / "reference_stats").count == 200
  np.savez(tmp_path / "nan.npz", mu=np.full(5, np.nan), sigma=np.eye(5), count=np.int64(10))
  with pytest.raises(ValueError, match=r"nan.npz holds non-finite mu or sigma"):
    GaussianStatistics.load(tmp_path / "nan.npz")


def _kid_loop_reference(x_mD: np.ndarray, y_mD: np.ndarray) -> float:
  m, dim = x_mD.shape
  kernel = lambda u, v: (float(u @ v) / dim + 1.0) ** 3
  xx = sum(kernel(x_mD[i], x_mD[j]) for i in range(m) for j in range(m) if i != j)
  yy = sum(kernel(y_mD[i], y_mD[j]) for i in range(m) for j in range(m) if i != j)
  xy = sum(kernel(x_mD[i], y_mD[j]) for i in range(m) for j in range(m))
  return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / m**2


def test_fd_bootstrap_spread_is_the_spread_of_fd_over_independent_sample_sets():
  rng = np.random.default_rng(0)
  reference = rng.normal(size=(2000, 3))
  draw = lambda: rng.normal(size=(300, 3)) * [1.0, 1.5, 0.7] + [0.3, 0.0, 0.0]
  spread = np.std([frechet_distance(draw(), reference) for _ in range(400)], ddof=1)
  bootstrap = sample_quality.frechet_distance_std(draw(), reference, num_resamples=200)
  assert 0.8 < bootstrap / spread < 1.5  # the bootstrap's duplicates widen it a little (1.0-1.3 over seeds)
  x = draw()
  assert sample_quality.frechet_distance_std(x, reference, 5, seed=1) == sample_quality.frechet_distance_std(
      x, reference, 5, seed=1) != sample_quality.frechet_distance_std(x, reference, 5, seed=2)
  # Both routes (resampled statistics from row counts; few samples of many features: the data route)
  # equal the distances of the explicitly resampled rows.
  for a, b in ((x, reference), (rng.normal(size=(6, 40)), rng.normal(size=(8, 40)))):
    rows = np.random.default_rng(3)
    explicit = [frechet_distance(a[rows.integers(0, len(a), len(a))], b) for _ in range(4)]
    assert sample_quality.frechet_distance_std(a, b, 4, seed=3) == pytest.approx(np.std(explicit, ddof=1),
                                                                               rel=1e-9)
  with pytest.raises(ValueError, match="num_resamples must be at least 2"):
    sample_quality.frechet_distance_std(x, reference, 1)


def test_kid_equals_a_direct_reference_on_all_samples():
  rng = np.random.default_rng(5)
  x_mD, y_mD = rng.normal(size=(40, 7)), rng.normal(size=(40, 7)) * 1.3 + 0.2
  mean, std = kernel_inception_distance(x_mD, y_mD, num_subsets=1, subset_size=1000)
  assert mean == pytest.approx(_kid_loop_reference(x_mD, y_mD), rel=1e-12)
  assert std == 0.0
  # Subsets are drawn from the seed (an int or a JAX key) and nothing else.
  x_ND = rng.normal(size=(100, 7))
  kid = lambda seed: kernel_inception_distance(x_ND, y_mD, num_subsets=5, subset_size=20, key_or_seed=seed)
  assert kid(jax.random.key(3)) == kid(jax.random.key(3))
  assert kid(4) == kid(4) != kid(jax.random.key(3))


def test_kid_is_unbiased_for_one_distribution_and_positive_for_shifted_ones():
  rng = np.random.default_rng(6)
  draws = [kernel_inception_distance(rng.normal(size=(30, 4)), rng.normal(size=(30, 4)), num_subsets=1)[0]
           for _ in range(300)]
  # Keeping the diagonal (the biased V-statistic) adds 2 (E k(x, x) - E k(x, y)) / m = 0.65, ~40 std errors.
  assert abs(np.mean(draws)) < 4 * np.std(draws) / np.sqrt(len(draws))

  x_ND, y_ND = rng.normal(size=(500, 4)), rng.normal(size=(500, 4)) + 0.5
  mean, std = kernel_inception_distance(x_ND, y_ND, num_subsets=20, subset_size=250)
  assert mean > 0.5 and mean > 5 * std


@pytest.mark.parametrize("k", [1, 3, 7])
@pytest.mark.parametrize("num_real,num_fake", [(300, 200), (150, 260)])
def test_prdc_matches_the_prdc_package(k, num_real, num_fake):
  rng = np.random.default_rng(k * num_real)
  real_ND = rng.normal(size=(num_real, 10))
  fake_MD = rng.normal(size=(num_fake, 10)) * 1.2 + 0.3
  expected = prdc.compute_prdc(real_ND, fake_MD, k)
  for chunk_size in (37, 512):  # chunk borders inside and beyond the sets
    got = precision_recall_density_coverage(real_ND, fake_MD, k=k, chunk_size=chunk_size)
    assert got == pytest.approx({name: float(value) for name, value in expected.items()}, abs=1e-12)


@pytest.mark.parametrize("n,dim,k,chunk_size", [(200, 64, 1, 64), (200, 64, 10, 64), (333, 100, 1, 64),
                                                (300, 64, 5, 64), (500, 16, 1, 64), (333, 100, 3, 7)])
def test_prdc_of_identical_and_of_far_apart_sets(n, dim, k, chunk_size):
  """Identical sets: each real ball holds its centre's copy and the k - 1 points nearer than the k-th, so
  density is exactly 1 (a copy of the k-th point lies on the ball's edge, outside an open ball; distances
  that rounded one way from x to y and another from y to x counted some of those: up to 1.03)."""
  rng = np.random.default_rng(n + k)
  real_ND = rng.normal(size=(n, dim)) + 50.0
  same = precision_recall_density_coverage(real_ND, real_ND.copy(), k=k, chunk_size=chunk_size)
  assert same == {"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}
  far = precision_recall_density_coverage(real_ND, real_ND[:150] + 100.0, k=3)
  assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def _save_without_count(path):
  np.savez(path, mu=np.zeros(3), sigma=np.eye(3))
  return GaussianStatistics.load(path)


@pytest.mark.parametrize("call,match", [
    (lambda: frechet_distance(np.zeros(10), np.zeros((10, 3))), r"feats_a must be 2-D .* got shape \(10,\)"),
    (lambda: frechet_distance(np.zeros((10, 3)), np.zeros((10, 4))),
     r"same feature dimension D; got shapes \(10, 3\) and \(10, 4\)"),
    (lambda: frechet_distance(np.zeros((10, 3)), np.zeros((1, 3))), r"feats_b needs at least 2 samples"),
    (lambda: frechet_distance(np.full((10, 3), np.nan), np.zeros((10, 3))), r"feats_a contains NaN or inf"),
    (lambda: kernel_inception_distance(np.zeros((10, 3)), np.zeros((10, 2))), r"same feature dimension D"),
    (lambda: kernel_inception_distance(np.zeros((1, 3)), np.zeros((10, 3))), r"feats_a needs at least 2"),
    (lambda: kernel_inception_distance(np.zeros((10, 3)), np.zeros((10, 3)), subset_size=1),
     r"subset_size must be at least 2"),
    (lambda: precision_recall_density_coverage(np.zeros((10, 3)), np.zeros((5, 3)), k=5),
     r"k=5 must be at least 1 and smaller than the number of samples .* fake has 5"),
    (lambda: precision_recall_density_coverage(np.zeros((10, 3, 1)), np.zeros((10, 3))), r"real must be 2-D"),
    (lambda: precision_recall_density_coverage(np.zeros((10, 3)), np.full((10, 3), np.inf)),
     r"fake contains NaN or inf"),
    (lambda: GaussianStatistics(3).update(np.zeros((4, 2))),
     r"has shape \(4, 2\) but these statistics have D=3"),
    (lambda: GaussianStatistics(3).update(np.zeros((1, 3))).cov,
     r"these statistics have 1 samples but need at least 2"),
    (lambda: frechet_distance_from_statistics(GaussianStatistics.from_features(np.eye(3)),
                                              GaussianStatistics.from_features(np.eye(4))),
     r"same feature dimension D; got 3 and 4"),
    (lambda: GaussianStatistics(3).merge(GaussianStatistics(4)), r"cannot merge statistics of D=4"),
])
def test_bad_input_is_rejected(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_npz_without_count_is_rejected(tmp_path):
  with pytest.raises(ValueError, match=r"lacks \['count'\]"):
    _save_without_count(tmp_path / "stats.npz")


def test_metric_defaults_are_the_published_settings():
  """KID: 100 subsets of 1,000 (Bińkowski et al.; torch-fidelity), drawn from seed 0; PRDC: k = 5 (Naeem et
  al. 2020). The sample-quality report and the trainer's config use the same values."""
  defaults = lambda fn: {name: p.default for name, p in inspect.signature(fn).parameters.items()
                         if p.default is not inspect.Parameter.empty}
  assert defaults(kernel_inception_distance) == {"num_subsets": 100, "subset_size": 1000, "key_or_seed": 0}
  assert defaults(precision_recall_density_coverage) == {"k": 5, "chunk_size": 512}
  assert defaults(quality_report.report) == {"kid_subsets": 100, "kid_subset_size": 1000, "prdc_k": 5,
                                             "inception_score_splits": 1, "fd_resamples": 10,
                                             "labels": None, "nonfinite_fraction": 0.0}
  ev = base_config().eval
  assert (ev.kid_subsets, ev.kid_subset_size, ev.prdc_k, ev.inception_score_splits,
          ev.fd_resamples) == (100, 1000, 5, 1, 10)
  rng = np.random.default_rng(8)
  real_ND, fake_MD = rng.normal(size=(60, 3)), rng.normal(size=(50, 3)) + 0.2
  default = precision_recall_density_coverage(real_ND, fake_MD)
  assert default == precision_recall_density_coverage(real_ND, fake_MD, k=5)
  reference = prdc.compute_prdc(real_ND, fake_MD, 5)
  assert default == pytest.approx({name: float(value) for name, value in reference.items()}, abs=1e-12)
