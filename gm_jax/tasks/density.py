"""Explicit density models trained by exact maximum likelihood (the Gaussian mixture baseline)."""

from __future__ import annotations

from gm_jax.data.dataset import Dataset
from gm_jax.models.gmm import GaussianMixture, init_from_data
from gm_jax.objectives import exact_nll
from gm_jax.train.task import Likelihood, Task, Update


def build_gmm(config, dataset: Dataset) -> Task:
  if dataset.spec.kind != "points":
    raise ValueError(f"the gmm task models continuous points (toy2d); data.name={config.data.name!r} "
                     f"has kind {dataset.spec.kind!r}")
  if config.model.num_components < 1:
    raise ValueError(f"model.num_components={config.model.num_components} must be >= 1")
  model = GaussianMixture(config.model.num_components, dataset.spec.shape[0])
  log_prob = lambda params, x: model.apply({"params": params}, x)

  def init(key, batch):
    return {"model": init_from_data(model, key, batch["x"])}

  def sample(params, model_state, key, n):
    return model.apply({"params": params["model"]}, key, n, method=GaussianMixture.sample)

  return Task(init=init, updates=(Update("model", exact_nll.make_loss(log_prob)),),
              eval_fn=exact_nll.make_eval(log_prob), sample_fn=sample,
              likelihood=Likelihood("nll_nats", "exact", dataset.spec.num_dims, discrete=False))


def default_config():
  """The trainer's defaults plus the mixture's one field; experiment configs start from this."""
  from gm_jax.train.defaults import base_config

  config = base_config()
  config.task = "gmm"
  config.model.num_components = 16
  return config


def tiny(config) -> None:
  """The Gaussian mixture's `:tiny` size is the launcher tests' run: 40 steps of batch 64 on 4,096 points,
  evaluated and sampled every 20, checkpointed every 10."""
  config.data.update(num_train=4096, num_test=4096, batch_size=64)
  config.train.update(num_steps=40, log_every=10, eval_every=20, sample_every=20, checkpoint_every=10,
                      num_samples=256)
  config.eval.batch_size = 1024
