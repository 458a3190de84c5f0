"""Explicit density models trained by exact maximum likelihood (the Gaussian mixture baseline)."""

from __future__ import annotations

import functools

import jax
import numpy as np

from gm_jax.data import toy2d
from gm_jax.data.dataset import Dataset
from gm_jax.evaluation import ledger
from gm_jax.models.gmm import GaussianMixture, init_from_data
from gm_jax.objectives import exact_nll
from gm_jax.train.optim import make_optimizer
from gm_jax.train.task import Task, Update


def toy2d_floor(dataset: Dataset, seed: int) -> dict[str, float]:
  """The floor a model's test NLL is compared with.

  entropy_nats: the distribution's true entropy (the lowest expected NLL); data_nll_nats: the true
  density's NLL on this very test split, so nll_nats - data_nll_nats estimates KL(p || model) without
  the test split's sampling noise.
  """
  dist = dataset.spec.extras.get("distribution")
  if dist is None:
    return {}
  h = toy2d.entropy(dist, jax.random.key(seed))
  x_test = dataset.test[np.arange(len(dataset.test))]["x"]
  data_nll = -float(np.mean(np.asarray(jax.jit(dist.log_prob)(x_test), np.float64)))
  return {"entropy_nats": h.nats, "entropy_stderr": h.stderr, "data_nll_nats": data_nll}


def build_gmm(config, dataset: Dataset) -> Task:
  if dataset.spec.kind != "points":
    raise ValueError(f"the gmm task models continuous points (toy2d); data.name={config.data.name!r} "
                     f"has kind {dataset.spec.kind!r}")
  model = GaussianMixture(config.model.num_components, dataset.spec.shape[0])
  log_prob = lambda params, x: model.apply({"params": params}, x)
  tx, schedule = make_optimizer(config.optim, config.train.num_steps)

  def init(key, batch):
    return {"model": init_from_data(model, key, batch["x"])}

  def sample(params, model_state, key, n):
    return model.apply({"params": params["model"]}, key, n, method=GaussianMixture.sample)

  @functools.cache
  def floor():
    return toy2d_floor(dataset, config.data.seed + 7)

  def summarize(means):
    entry = ledger.likelihood_entry(means["nll_nats"], dataset.spec.num_dims, "exact", discrete=False)
    return {**entry, **floor()}

  return Task(init=init, updates=(Update("model", exact_nll.make_loss(log_prob)),),
              optimizers={"model": tx}, schedules={"model": schedule},
              eval_fn=exact_nll.make_eval(log_prob), summarize=summarize, sample_fn=sample)
