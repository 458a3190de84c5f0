"""The one likelihood ledger shared by every family.

Every model with a likelihood reports, per example (per token for a language model, whose example is a
token given its context), `nll_nats` (-log p(x) or a bound on it), and on
discrete data `bpd` = nll_nats / (num_dims * ln 2), computed on the discrete data (dequantization and
rescaling Jacobians already included in nll_nats), plus `estimator`: which quantity it is
('exact', 'elbo', 'iwae_K', 'vlb', 'ode').
"""

from __future__ import annotations

import math
import re

import jax
import numpy as np

from gm_jax.data import toy2d
from gm_jax.data.dataset import Dataset

ESTIMATORS = ("exact", "elbo", "vlb", "ode")


def bits_per_dim(nll_nats: float, num_dims: int) -> float:
  return nll_nats / (num_dims * math.log(2.0))


def check_estimator(estimator: str) -> str:
  if estimator in ESTIMATORS or re.fullmatch(r"iwae_[1-9][0-9]*", estimator):
    return estimator
  raise ValueError(f"unknown likelihood estimator {estimator!r}; use one of {ESTIMATORS} or iwae_K")


def likelihood_of(binarized: bool = False, given_label: bool = False) -> str:
  """What a likelihood is of when that is not the data set as loaded ("" when it is): a Bernoulli
  decoder's random binarization of grey levels, and/or data given its class label (-log p(x | y), lower
  than -log p(x) by up to log(number of classes) nats, so not to be read beside unconditional models)."""
  if not (binarized or given_label):
    return ""
  return ("binarized data" if binarized else "data") + (" given the label" if given_label else "")


def likelihood_entry(nll_nats: float, num_dims: int, estimator: str, discrete: bool,
                     likelihood_of: str = "") -> dict:
  """The ledger fields for one evaluation; `bpd` only for discrete data, where it is a true rate;
  `likelihood_of` (a phrase from the function of that name) only when the likelihood is not of the data
  set as loaded."""
  entry = {"nll_nats": float(nll_nats), "estimator": check_estimator(estimator)}
  if discrete:
    entry["bpd"] = bits_per_dim(nll_nats, num_dims)
  if likelihood_of:
    entry["likelihood_of"] = likelihood_of
  return entry


def data_floor(dataset: Dataset, seed: int) -> dict[str, float]:
  """The floor a model's test NLL is compared with, for data whose distribution is known ({} otherwise).

  Points (toy2d): entropy_nats, the distribution's true entropy (the lowest expected NLL; Monte Carlo
  with `seed`, hence entropy_stderr). Tokens of a Markov chain: entropy_rate_nats per token. Both:
  data_nll_nats, the true density's NLL on this very test split, so nll_nats - data_nll_nats estimates
  KL(p || model) without the test split's sampling noise.
  """
  dist, chain = dataset.spec.extras.get("distribution"), dataset.spec.extras.get("chain")
  if chain is not None:
    test_tokens = np.asarray(dataset.test.tokens)
    return {"entropy_rate_nats": chain.entropy_rate, "data_nll_nats": chain.nll(test_tokens)}
  if dist is None:
    return {}
  h = toy2d.entropy(dist, jax.random.key(seed), dataset.spec.extras["entropy_samples"])
  x_test = dataset.test[np.arange(len(dataset.test))]["x"]
  data_nll = -float(np.mean(toy2d.log_prob_in_blocks(dist, x_test)))
  return {"entropy_nats": h.nats, "entropy_stderr": h.stderr, "data_nll_nats": data_nll}
