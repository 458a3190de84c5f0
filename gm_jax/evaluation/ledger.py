"""The one likelihood ledger shared by every family.

Every model with a likelihood reports, per example, `nll_nats` (-log p(x) or a bound on it), and on
discrete data `bpd` = nll_nats / (num_dims * ln 2), computed on the discrete data (dequantization and
rescaling Jacobians already included in nll_nats), plus `estimator`: which quantity it is
('exact', 'elbo', 'iwae_K', 'vlb', 'ode').
"""

from __future__ import annotations

import math

ESTIMATORS = ("exact", "elbo", "vlb", "ode")


def bits_per_dim(nll_nats: float, num_dims: int) -> float:
  return nll_nats / (num_dims * math.log(2.0))


def check_estimator(estimator: str) -> str:
  if estimator in ESTIMATORS or (estimator.startswith("iwae_") and estimator[5:].isdigit()):
    return estimator
  raise ValueError(f"unknown likelihood estimator {estimator!r}; use one of {ESTIMATORS} or iwae_K")


def likelihood_entry(nll_nats: float, num_dims: int, estimator: str, discrete: bool) -> dict:
  """The ledger fields for one evaluation; `bpd` only for discrete data, where it is a true rate."""
  entry = {"nll_nats": float(nll_nats), "estimator": check_estimator(estimator)}
  if discrete:
    entry["bpd"] = bits_per_dim(nll_nats, num_dims)
  return entry
