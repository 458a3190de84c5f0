"""Sample quality of a model beside its data floor, in one named feature space.

The generated samples and a held-out "floor" set of real examples (the same count, or fewer when the
held-out split is smaller: floor_num_samples) are each compared with the same reference set of real
examples: Fréchet distance, KID, precision / recall / density / coverage, and for classifier feature
spaces an Inception-Score-style number. The floor is what real data scores at that sample count (FD is
biased upwards at small N), so a model is judged against it; a floor of fewer examples than samples
(the FID protocol's 50,000 samples against CIFAR-10's 10,000 test images) lies above the one the
samples' count would give.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gm_jax.evaluation import sample_quality
from gm_jax.evaluation.feature_spaces import FeatureSpace


def inception_score(probs_NC: np.ndarray) -> float:
  """exp(E_x KL(p(y | x) || p(y))) with p(y) the mean of p(y | x) over the set (Salimans et al. 2016)."""
  p = np.clip(np.asarray(probs_NC, np.float64), 1e-12, 1.0)
  marginal = p.mean(axis=0, keepdims=True)
  return float(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(marginal)), axis=1))))


SPLIT_ORDER_SEED = 0  # the fixed order whose contiguous parts the score is taken over


def inception_score_over_splits(probs_NC: np.ndarray, splits: int) -> tuple[float, float]:
  """Mean and standard deviation (ddof 0) of the score of `splits` nearly equal parts, as Salimans et al.'s
  code reports it (10 splits of 50,000 samples); one split is the whole set's score. The parts are
  contiguous runs of the samples put in a fixed random order (SPLIT_ORDER_SEED): their code splits its
  samples as drawn, which are in random order, while a conditional model's come in class runs
  (`tasks.conditioning.class_runs`), and parts of those (contiguous or strided) would each hold a few of
  the classes and score lower."""
  if not 1 <= splits <= len(probs_NC):
    raise ValueError(f"eval.inception_score_splits={splits} must be between 1 and the number of samples "
                     f"({len(probs_NC)})")
  probs_NC = np.asarray(probs_NC)
  if splits > 1:
    probs_NC = probs_NC[np.random.default_rng(SPLIT_ORDER_SEED).permutation(len(probs_NC))]
  scores = [inception_score(part) for part in np.array_split(probs_NC, splits)]
  return float(np.mean(scores)), float(np.std(scores))


def class_accuracy(probs_NC: np.ndarray, labels_N: np.ndarray) -> float:
  """Fraction of samples whose most probable class under the feature classifier is their label."""
  return float(np.mean(np.argmax(probs_NC, axis=1) == np.asarray(labels_N)))


def compare(feats_ND: np.ndarray, probs_NC: np.ndarray | None, reference_ND: np.ndarray, *, kid_subsets: int,
            kid_subset_size: int, prdc_k: int, inception_score_splits: int = 1,
            fd_resamples: int = 10) -> dict[str, float]:
  """The metrics of one set of features against the reference features; with fd_resamples (0: none), also
  `fd_std`, the Fréchet distance's spread over that many bootstrap resamples of the set."""
  kid_mean, kid_std = sample_quality.kernel_inception_distance(feats_ND, reference_ND,
                                                               num_subsets=kid_subsets,
                                                               subset_size=kid_subset_size)
  out = {"fd": sample_quality.frechet_distance(feats_ND, reference_ND), "kid": kid_mean, "kid_std": kid_std}
  if fd_resamples:
    out["fd_std"] = sample_quality.frechet_distance_std(feats_ND, reference_ND, fd_resamples)
  out.update(sample_quality.precision_recall_density_coverage(reference_ND, feats_ND, k=prdc_k))
  if probs_NC is not None:
    out["inception_score"], spread = inception_score_over_splits(probs_NC, inception_score_splits)
    if inception_score_splits > 1:
      out["inception_score_std"] = spread
  return {k: float(v) for k, v in out.items()}


def balanced_subset(labels: np.ndarray, n: int, count: int) -> np.ndarray:
  """Indices, in increasing order, of n of the examples with these labels: of each of the `count`
  classes its first ones, each class as often as the others give or take one; raises if the labels hold
  too few of a class."""
  quota = n // count + (np.arange(count) < n % count)
  chosen = [np.flatnonzero(labels == c)[:quota[c]] for c in range(count)]
  short = [c for c in range(count) if len(chosen[c]) < quota[c]]
  if short:
    raise ValueError(f"{np.sum(labels == short[0])} examples of class {short[0]}, {quota[short[0]]} needed")
  return np.sort(np.concatenate(chosen))


def round_robin(labels: np.ndarray) -> np.ndarray:
  """An order of the examples that takes each class's first, then each class's second, ...: the first
  few of them show every class."""
  rank = np.zeros(len(labels), np.int64)
  for c in np.unique(labels):
    rank[labels == c] = np.arange(np.sum(labels == c))
  return np.lexsort((labels, rank))


def report(space: FeatureSpace, samples: np.ndarray, reference: np.ndarray, floor: np.ndarray, *,
           kid_subsets: int = 100, kid_subset_size: int = 1000, prdc_k: int = 5,
           inception_score_splits: int = 1, fd_resamples: int = 10,
           labels: tuple[np.ndarray, np.ndarray] | None = None, nonfinite_fraction: float = 0.0
           ) -> dict[str, Any]:
  """Sample-quality fields of summary.json: each metric for the samples and, as `<metric>_floor`, for the
  real floor set; both against `reference`. In a classifier space the Inception Score is the mean over
  `inception_score_splits` parts of each set (and `inception_score_std` when more than one); with
  `fd_resamples`, `fd_std` is the Fréchet distance's bootstrap spread over the set's examples. With
  `labels` (the samples' conditioning labels, the floor set's labels) and a space whose classifier names
  the data's classes (`FeatureSpace.classes_are_data_labels`), also
  `class_accuracy`: how often the classifier names the class a sample was drawn for (its floor: the
  classifier's accuracy on the real floor set, which with the default test reference holds training
  examples, named better than held-out ones by a classifier trained on them, as the digits classifier
  is). When a fraction of the samples held non-finite values (`nonfinite_fraction` > 0), their metrics
  are NaN."""
  reference_feats, _ = space.embed(reference)
  settings = dict(kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, prdc_k=prdc_k,
                  inception_score_splits=inception_score_splits, fd_resamples=fd_resamples)
  out: dict[str, Any] = {"feature_space": space.name, "num_samples": len(samples),
                         "num_reference": len(reference), "floor_num_samples": len(floor)}
  sample_labels, floor_labels = labels if labels is not None else (None, None)
  for suffix, examples, example_labels in (("", samples, sample_labels), ("_floor", floor, floor_labels)):
    if suffix == "" and nonfinite_fraction > 0:
      continue
    feats, probs = space.embed(examples)
    metrics = compare(feats, probs, reference_feats, **settings)
    if example_labels is not None and probs is not None and space.classes_are_data_labels:
      metrics["class_accuracy"] = class_accuracy(probs, example_labels)
    out.update({f"{k}{suffix}": v for k, v in metrics.items()})
  if nonfinite_fraction > 0:  # features of NaN, or of the level a NaN was rounded to, judge no samples
    out.update({k.removesuffix("_floor"): float("nan") for k in list(out) if k.endswith("_floor")})
    out["nonfinite_sample_fraction"] = nonfinite_fraction
  return out
