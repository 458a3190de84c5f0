"""Sample-quality metrics on feature vectors (e.g. Inception pool features): FD, KID and PRDC.

  frechet_distance                     Fréchet distance between Gaussians fitted to two feature sets (FID on
                                       Inception features), exact also for rank-deficient covariances;
                                       from the covariances, or from the data for few samples
  frechet_distance_std                 its spread over bootstrap resamples of the first set
  GaussianStatistics                   streaming, mergeable mean/covariance for the same, with .npz caching
  kernel_inception_distance            unbiased MMD^2 with the cubic polynomial kernel (Bińkowski et al. 2018)
  precision_recall_density_coverage    k-NN manifold metrics (Kynkäänniemi et al. 2019; Naeem et al. 2020)

All in float64 NumPy: these are host-side evaluations, where correctness matters more than speed.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np


def _as_features(x: Any, name: str) -> np.ndarray:
  """`x` as a finite float64 (N, D) array, or a ValueError naming `name`."""
  x_ND = np.asarray(x, dtype=np.float64)
  if x_ND.ndim != 2:
    raise ValueError(f"{name} must be 2-D (num_samples, num_features); got shape {x_ND.shape}, "
                     "reshape it to (N, D).")
  if not np.all(np.isfinite(x_ND)):
    raise ValueError(f"{name} contains NaN or inf; drop or fix those samples before computing the metric.")
  return x_ND


def _check_same_dim(a_ND: np.ndarray, b_MD: np.ndarray, name_a: str, name_b: str) -> None:
  if a_ND.shape[1] != b_MD.shape[1]:
    raise ValueError(f"{name_a} and {name_b} must have the same feature dimension D; "
                     f"got shapes {a_ND.shape} and {b_MD.shape}.")


def _check_min_samples(x_ND: np.ndarray, name: str, minimum: int = 2) -> None:
  if x_ND.shape[0] < minimum:
    raise ValueError(f"{name} needs at least {minimum} samples (rows); got shape {x_ND.shape}, "
                     "pass more samples.")


def _two_feature_sets(feats_a: Any, feats_b: Any) -> tuple[np.ndarray, np.ndarray]:
  """feats_a and feats_b as checked float64 (N, D) and (M, D) arrays with N, M >= 2."""
  feats_a, feats_b = _as_features(feats_a, "feats_a"), _as_features(feats_b, "feats_b")
  _check_same_dim(feats_a, feats_b, "feats_a", "feats_b")
  _check_min_samples(feats_a, "feats_a")
  _check_min_samples(feats_b, "feats_b")
  return feats_a, feats_b


# A covariance is symmetric positive semi-definite up to rounding: a matrix asymmetric, or with an
# eigenvalue below zero, by more than this fraction of its largest eigenvalue is refused, not clipped.
NOT_A_COVARIANCE = 1e-3


def _psd_sqrt(cov_DD: np.ndarray, name: str = "the covariance") -> tuple[np.ndarray, np.ndarray]:
  """Symmetric square root S^{1/2} = V diag(sqrt(lambda)) V^T of a covariance, and its eigenvalues lambda.

  Eigenvalues below the rounding floor D * eps * max(lambda) (numpy.linalg.matrix_rank's tolerance) are set
  to 0: there they are indistinguishable from the exact zeros of a rank-deficient covariance, and keeping them
  would add sqrt(eps)-sized errors to the distance.
  """
  asymmetry = float(np.abs(cov_DD - cov_DD.T).max(initial=0.0))
  cov_DD = 0.5 * (cov_DD + cov_DD.T)
  eigval_D, eigvec_DD = np.linalg.eigh(cov_DD)
  largest = float(np.abs(eigval_D).max(initial=0.0))
  if asymmetry > NOT_A_COVARIANCE * largest or eigval_D.min(initial=0.0) < -NOT_A_COVARIANCE * largest:
    raise ValueError(f"{name} is not a covariance (asymmetric by {asymmetry:.3g}, smallest eigenvalue "
                     f"{eigval_D.min(initial=0.0):.3g}, largest {largest:.3g}); pass the features' "
                     f"covariance, symmetric positive semi-definite")
  floor = cov_DD.shape[0] * np.finfo(np.float64).eps * max(float(eigval_D.max(initial=0.0)), 0.0)
  eigval_D = np.where(eigval_D > floor, eigval_D, 0.0)
  return (eigvec_DD * np.sqrt(eigval_D)) @ eigvec_DD.T, eigval_D


def gaussian_frechet_distance(mu_a_D: Any, cov_a_DD: Any, mu_b_D: Any, cov_b_DD: Any) -> float:
  """Fréchet (2-Wasserstein squared) distance between N(mu_a, S_a) and N(mu_b, S_b):

    ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^{1/2} S_b S_a^{1/2})^{1/2}).

  The trace of the inner square root is the sum of singular values of S_a^{1/2} S_b^{1/2} (that matrix times
  its transpose is S_a^{1/2} S_b S_a^{1/2}). Singular values are accurate to eps times the largest one,
  whereas square roots of the eigenvalues of the inner matrix carry sqrt(eps)-sized errors on its null space,
  which a rank-deficient covariance (N < D, duplicated features) has.
  """
  mu_a_D, mu_b_D = np.asarray(mu_a_D, np.float64), np.asarray(mu_b_D, np.float64)
  cov_a_DD, cov_b_DD = np.asarray(cov_a_DD, np.float64), np.asarray(cov_b_DD, np.float64)
  dim = mu_a_D.shape[0]
  for name, shape, expected in (("mu_a", mu_a_D.shape, (dim,)), ("mu_b", mu_b_D.shape, (dim,)),
                                ("cov_a", cov_a_DD.shape, (dim, dim)), ("cov_b", cov_b_DD.shape, (dim, dim))):
    if shape != expected:
      raise ValueError(f"{name} has shape {shape} but mu_a has D={dim}, so it must be {expected}; "
                       "pass statistics of the same features.")
  return _frechet_distance_of_roots(mu_a_D, *_psd_sqrt(cov_a_DD, "cov_a"), mu_b_D,
                                    *_psd_sqrt(cov_b_DD, "cov_b"))


def _frechet_distance_of_roots(mu_a_D, sqrt_a_DD, eigval_a_D, mu_b_D, sqrt_b_DD, eigval_b_D) -> float:
  trace_sqrt = np.linalg.svd(sqrt_a_DD @ sqrt_b_DD, compute_uv=False).sum()
  diff_D = mu_a_D - mu_b_D
  # Traces as eigenvalue sums of the same floored spectra, so the distance of a set to itself cancels.
  return float(diff_D @ diff_D + eigval_a_D.sum() + eigval_b_D.sum() - 2.0 * trace_sqrt)


class GaussianStatistics:
  """Running count, mean and covariance of feature vectors in float64, fed batch by batch.

  Holds n, mu and the centred scatter M2 = sum_i (x_i - mu)(x_i - mu)^T. Two summaries combine exactly
  (Chan, Golub & LeVeque 1979), with delta = mu_b - mu_a and n = n_a + n_b:

    mu = mu_a + (n_b / n) delta,    M2 = M2_a + M2_b + (n_a n_b / n) delta delta^T.

  The unbiased covariance (ddof=1, as the reference FID code) is M2 / (n - 1). Accumulating sum x x^T and
  subtracting n mu mu^T at the end would lose digits whenever the mean is large compared to the spread.
  """

  def __init__(self, dim: int):
    if dim < 1:
      raise ValueError(f"dim must be a positive feature dimension; got {dim}.")
    self.count = 0
    self._mean_D = np.zeros(dim)
    self._m2_DD = np.zeros((dim, dim))

  @property
  def dim(self) -> int:
    return self._mean_D.shape[0]

  @classmethod
  def from_features(cls, feats_ND: Any) -> GaussianStatistics:
    feats_ND = _as_features(feats_ND, "feats")
    return cls(feats_ND.shape[1]).update(feats_ND)

  def _combine(self, count: int, mean_D: np.ndarray, m2_DD: np.ndarray) -> None:
    total = self.count + count
    delta_D = mean_D - self._mean_D
    self._m2_DD = self._m2_DD + m2_DD + (self.count * count / total) * np.outer(delta_D, delta_D)
    self._mean_D = self._mean_D + (count / total) * delta_D
    self.count = total

  def update(self, feats_BD: Any) -> GaussianStatistics:
    """Adds a batch of feature vectors (in place); returns self."""
    feats_BD = _as_features(feats_BD, "feats_BD")
    if feats_BD.shape[1] != self.dim:
      raise ValueError(f"feats_BD has shape {feats_BD.shape} but these statistics have D={self.dim}; "
                       "feed features of the same dimension.")
    if feats_BD.shape[0] == 0:
      return self
    mean_D = feats_BD.mean(axis=0)
    centred_BD = feats_BD - mean_D
    self._combine(feats_BD.shape[0], mean_D, centred_BD.T @ centred_BD)
    return self

  def merge(self, other: GaussianStatistics) -> GaussianStatistics:
    """Folds `other` (e.g. another worker's share of the samples) into these statistics in place."""
    if other.dim != self.dim:
      raise ValueError(f"cannot merge statistics of D={other.dim} into statistics of D={self.dim}; "
                       "both must come from the same features.")
    if other.count > 0:
      self._combine(other.count, other._mean_D, other._m2_DD)
    return self

  @property
  def mean(self) -> np.ndarray:
    _check_count(self, "these statistics", 1)
    return self._mean_D.copy()

  @property
  def cov(self) -> np.ndarray:
    """Unbiased covariance M2 / (n - 1)."""
    _check_count(self, "these statistics", 2)
    return self._m2_DD / (self.count - 1)

  def save(self, path: str | os.PathLike) -> None:
    """Writes mu, sigma (unbiased covariance) and count in .npz form to `path` as given (numpy would append
    .npz to a name without it, which `load(path)` would then not find), e.g. a data set's reference
    statistics."""
    with open(path, "wb") as f:
      np.savez(f, mu=self.mean, sigma=self.cov, count=np.int64(self.count))

  @classmethod
  def load(cls, path: str | os.PathLike) -> GaussianStatistics:
    """Reads statistics written by `save` (mu, sigma, count); they can be merged and updated further."""
    with np.load(path) as data:
      missing = {"mu", "sigma", "count"} - set(data.files)
      if missing:
        raise ValueError(f"{path} lacks {sorted(missing)}; it must hold mu, sigma and count as written by "
                         "GaussianStatistics.save.")
      mu_D, sigma_DD, count = data["mu"], data["sigma"], int(data["count"])
    if mu_D.ndim != 1 or sigma_DD.shape != (mu_D.shape[0],) * 2 or count < 2:
      raise ValueError(f"{path} holds mu {mu_D.shape}, sigma {sigma_DD.shape} and count {count}; "
                       "expected (D,), (D, D) and count >= 2.")
    if not (np.all(np.isfinite(mu_D)) and np.all(np.isfinite(sigma_DD))):
      raise ValueError(f"{path} holds non-finite mu or sigma; write the statistics again from finite "
                       "features")
    stats = cls(mu_D.shape[0])
    stats.count = count
    stats._mean_D = mu_D.astype(np.float64)
    stats._m2_DD = sigma_DD.astype(np.float64) * (count - 1)
    return stats


def _check_count(stats: GaussianStatistics, name: str, minimum: int) -> None:
  if stats.count < minimum:
    raise ValueError(f"{name} have {stats.count} samples but need at least {minimum}; "
                     "update them with more features.")


def frechet_distance_from_statistics(stats_a: GaussianStatistics, stats_b: GaussianStatistics) -> float:
  """Fréchet distance between the Gaussians N(mu, cov) of two accumulated feature summaries."""
  _check_count(stats_a, "the statistics stats_a", 2)
  _check_count(stats_b, "the statistics stats_b", 2)
  if stats_a.dim != stats_b.dim:
    raise ValueError(f"stats_a and stats_b must have the same feature dimension D; got {stats_a.dim} and "
                     f"{stats_b.dim}.")
  return gaussian_frechet_distance(stats_a.mean, stats_a.cov, stats_b.mean, stats_b.cov)


def frechet_distance(feats_a: Any, feats_b: Any) -> float:
  """Fréchet distance between Gaussians fitted to two (N, D) and (M, D) feature sets (FID on Inception
  features):

    ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^{1/2} S_b S_a^{1/2})^{1/2}),  S unbiased (ddof=1).

  From the covariances (D x D eigendecompositions), or from the data when its N x M product and that
  product's SVD cost less (few samples of many features, e.g. a quick FID): frechet_distance_from_data.
  """
  feats_a, feats_b = _two_feature_sets(feats_a, feats_b)
  if _data_route_is_cheaper(len(feats_a), len(feats_b), feats_a.shape[1]):
    return _frechet_distance_of_checked_data(feats_a, feats_b)
  return frechet_distance_from_statistics(GaussianStatistics.from_features(feats_a),
                                          GaussianStatistics.from_features(feats_b))


def _data_route_is_cheaper(n: int, m: int, dim: int) -> bool:
  """The data route's N x M product and its SVD against the covariances and their D x D decompositions."""
  return n * m * (dim + min(n, m)) <= dim * dim * (n + m + dim)


def frechet_distance_from_data(feats_a: Any, feats_b: Any) -> float:
  """frechet_distance without covariances: with S = Y^T Y (Y the centred rows over sqrt(N - 1)),
  tr S = ||Y||_F^2 and tr (S_a^{1/2} S_b S_a^{1/2})^{1/2} is the sum of the singular values of the N x M
  matrix Y_a Y_b^T (it times its transpose, Y_a S_b Y_a^T, has the nonzero eigenvalues of S_b S_a and so
  of S_a^{1/2} S_b S_a^{1/2}); exact also for the rank-deficient covariances of N < D samples."""
  return _frechet_distance_of_checked_data(*_two_feature_sets(feats_a, feats_b))


def _frechet_distance_of_checked_data(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
  ya_ND = (feats_a - feats_a.mean(0)) / np.sqrt(len(feats_a) - 1)
  yb_MD = (feats_b - feats_b.mean(0)) / np.sqrt(len(feats_b) - 1)
  diff_D = feats_a.mean(0) - feats_b.mean(0)
  inner_trace = np.linalg.svd(ya_ND @ yb_MD.T, compute_uv=False).sum()
  return float(diff_D @ diff_D + np.sum(ya_ND**2) + np.sum(yb_MD**2) - 2.0 * inner_trace)


def frechet_distance_std(feats_a: Any, feats_b: Any, num_resamples: int, seed: int = 0) -> float:
  """The standard deviation (ddof 1) of the Fréchet distance over `num_resamples` bootstrap resamples of
  the first set (N rows drawn with replacement; the second set, the reference, held fixed): how far the
  distance of N other samples from the same model may lie. Only the spread is meant: the resamples'
  duplicates bias their distances upwards. On the covariance route the reference's square root is
  computed once and each resample's statistics come from its rows' counts (no copy of the rows)."""
  feats_a, feats_b = _two_feature_sets(feats_a, feats_b)
  if num_resamples < 2:
    raise ValueError(f"num_resamples must be at least 2 for a standard deviation; got {num_resamples}.")
  rng = np.random.default_rng(seed)
  (n, dim), m = feats_a.shape, len(feats_b)
  draws = (rng.integers(0, n, n) for _ in range(num_resamples))
  if _data_route_is_cheaper(n, m, dim):
    distances = [_frechet_distance_of_checked_data(feats_a[rows], feats_b) for rows in draws]
    return float(np.std(distances, ddof=1))
  reference = GaussianStatistics.from_features(feats_b)
  roots_b = (reference.mean, *_psd_sqrt(reference.cov, "the reference statistics' covariance"))
  distances = []
  for rows in draws:
    counts_N = np.bincount(rows, minlength=n).astype(np.float64)
    mean_D = counts_N @ feats_a / n
    centred_ND = feats_a - mean_D
    cov_DD = (centred_ND.T * counts_N) @ centred_ND / (n - 1)
    distances.append(_frechet_distance_of_roots(mean_D, *_psd_sqrt(cov_DD), *roots_b))
  return float(np.std(distances, ddof=1))


def _numpy_rng(key_or_seed: int | jax.Array) -> np.random.Generator:
  """A NumPy generator seeded by an int or by the bits of a JAX PRNG key (typed or raw uint32)."""
  if isinstance(key_or_seed, (int, np.integer)):
    return np.random.default_rng(int(key_or_seed))
  key = key_or_seed
  if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
    key = jax.random.key_data(key)
  return np.random.default_rng(np.asarray(key, np.uint32).ravel())


def _cubic_kernel_mmd2(x_mD: np.ndarray, y_mD: np.ndarray) -> float:
  """Unbiased MMD^2 with k(x, y) = (x.y / D + 1)^3 between equally sized sets:

    sum_{i != j} [k(x_i, x_j) + k(y_i, y_j)] / (m (m - 1)) - 2 sum_{i, j} k(x_i, y_j) / m^2.
  """
  m, dim = x_mD.shape

  def kernel_sum(a_mD, b_mD, exclude_diagonal):
    k_mm = a_mD @ b_mD.T  # in place from here: three m x m temporaries per subset cost more than the product
    k_mm *= 1.0 / dim
    k_mm += 1.0
    cube_mm = np.multiply(k_mm, k_mm)
    cube_mm *= k_mm
    return cube_mm.sum() - (np.trace(cube_mm) if exclude_diagonal else 0.0)

  within = kernel_sum(x_mD, x_mD, True) + kernel_sum(y_mD, y_mD, True)
  return float(within / (m * (m - 1)) - 2.0 * kernel_sum(x_mD, y_mD, False) / m**2)


def kernel_inception_distance(feats_a: Any, feats_b: Any, num_subsets: int = 100, subset_size: int = 1000,
                              key_or_seed: int | jax.Array = 0) -> tuple[float, float]:
  """KID (Bińkowski et al. 2018): mean and standard deviation over `num_subsets` random subsets of the
  unbiased MMD^2 estimate with the cubic polynomial kernel k(x, y) = (x.y / D + 1)^3.

  Each subset draws min(subset_size, N_a, N_b) rows of each set without replacement; the draws are
  deterministic given `key_or_seed` (an int or a JAX PRNG key). The standard deviation is the population one
  (ddof=0), as in torch-fidelity. The estimate is unbiased, so it can be slightly negative for matching
  distributions.
  """
  feats_a, feats_b = _two_feature_sets(feats_a, feats_b)
  if num_subsets < 1:
    raise ValueError(f"num_subsets must be at least 1; got {num_subsets}.")
  if subset_size < 2:
    raise ValueError(f"subset_size must be at least 2 for the unbiased estimator; got {subset_size}.")
  m = min(subset_size, feats_a.shape[0], feats_b.shape[0])
  rng = _numpy_rng(key_or_seed)
  mmd2_S = np.empty(num_subsets)
  for s in range(num_subsets):
    x_mD = feats_a[rng.choice(feats_a.shape[0], m, replace=False)]
    y_mD = feats_b[rng.choice(feats_b.shape[0], m, replace=False)]
    mmd2_S[s] = _cubic_kernel_mmd2(x_mD, y_mD)
  return float(mmd2_S.mean()), float(mmd2_S.std())


# A point within this relative distance of a ball's edge is on it, outside the open ball: d(x, y) and
# d(y, x) come from different BLAS products and may differ in their last bits, and a sample that copies a
# real point must not fall inside the balls whose radius that point sets (density above 1 on copies).
_EDGE = 1e-9


def _distances(x_CD: np.ndarray, y_ND: np.ndarray, y_sqnorm_N: np.ndarray) -> np.ndarray:
  """Euclidean distances (C, N) from sqrt(|x|^2 + |y|^2 - 2 x.y), one BLAS product per chunk of rows."""
  sq_CN = np.einsum("cd,cd->c", x_CD, x_CD)[:, None] + y_sqnorm_N[None, :]
  product_CN = x_CD @ y_ND.T
  product_CN *= 2.0
  sq_CN -= product_CN
  np.maximum(sq_CN, 0.0, out=sq_CN)
  return np.sqrt(sq_CN, out=sq_CN)


def _kth_neighbour_distance(x_ND: np.ndarray, k: int, chunk_size: int) -> np.ndarray:
  """Distance from each row to its k-th nearest other row (the row itself excluded, duplicates count)."""
  n = x_ND.shape[0]
  sqnorm_N = np.einsum("nd,nd->n", x_ND, x_ND)
  radius_N = np.empty(n)
  for start in range(0, n, chunk_size):
    stop = min(start + chunk_size, n)
    dist_CN = _distances(x_ND[start:stop], x_ND, sqnorm_N)
    dist_CN[np.arange(stop - start), np.arange(start, stop)] = np.inf
    radius_N[start:stop] = np.partition(dist_CN, k - 1, axis=1)[:, k - 1]
  return radius_N


def precision_recall_density_coverage(real: Any, fake: Any, k: int = 5,
                                      chunk_size: int = 512) -> dict[str, float]:
  """Improved precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al. 2020).

  With r_i the distance from real x_i to its k-th nearest other real sample, s_j the same for fake y_j within
  the fake set, and B(c, r) the open ball:

    precision = mean_j 1[exists i: y_j in B(x_i, r_i)]       recall   = mean_i 1[exists j: x_i in B(y_j, s_j)]
    density   = mean_j (1/k) sum_i 1[y_j in B(x_i, r_i)]     coverage = mean_i 1[exists j: y_j in B(x_i, r_i)]

  Strict inequalities, as in the reference `prdc` package (a point within rounding of a ball's edge is on
  it). Distances are computed `chunk_size` rows at a time,
  so memory is O(chunk_size * max(N, M)) and 10k x 10k sets never form an N x M matrix.
  """
  real_ND, fake_MD = _as_features(real, "real"), _as_features(fake, "fake")
  _check_same_dim(real_ND, fake_MD, "real", "fake")
  if not 1 <= k < min(real_ND.shape[0], fake_MD.shape[0]):
    raise ValueError(f"k={k} must be at least 1 and smaller than the number of samples in each set (real has "
                     f"{real_ND.shape[0]}, fake has {fake_MD.shape[0]}); lower k or pass more samples.")
  if chunk_size < 1:
    raise ValueError(f"chunk_size must be positive; got {chunk_size}.")
  # Distances are shift invariant; centring keeps |x|^2 near the spread, so the expansion loses fewer digits.
  shift_D = real_ND.mean(axis=0)
  real_ND, fake_MD = real_ND - shift_D, fake_MD - shift_D
  real_radius_N = _kth_neighbour_distance(real_ND, k, chunk_size) * (1.0 - _EDGE)
  fake_radius_M = _kth_neighbour_distance(fake_MD, k, chunk_size) * (1.0 - _EDGE)

  real_sqnorm_N = np.einsum("nd,nd->n", real_ND, real_ND)
  num_fake = fake_MD.shape[0]
  in_real_balls = 0  # fakes inside at least one real ball
  real_ball_hits = 0  # (fake, real ball) pairs
  in_fake_ball_N = np.zeros(real_ND.shape[0], bool)
  nearest_fake_N = np.full(real_ND.shape[0], np.inf)
  for start in range(0, num_fake, chunk_size):
    stop = min(start + chunk_size, num_fake)
    dist_CN = _distances(fake_MD[start:stop], real_ND, real_sqnorm_N)
    inside_CN = dist_CN < real_radius_N[None, :]
    in_real_balls += int(inside_CN.any(axis=1).sum())
    real_ball_hits += int(inside_CN.sum())
    in_fake_ball_N |= (dist_CN < fake_radius_M[start:stop, None]).any(axis=0)
    np.minimum(nearest_fake_N, dist_CN.min(axis=0), out=nearest_fake_N)
  return {"precision": in_real_balls / num_fake, "recall": float(in_fake_ball_N.mean()),
          "density": real_ball_hits / (k * num_fake),
          "coverage": float((nearest_fake_N < real_radius_N).mean())}
