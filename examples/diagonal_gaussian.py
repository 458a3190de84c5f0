"""A model family defined outside gm_jax: a diagonal Gaussian fitted by maximum likelihood.

docs/adding_a_model.md walks through it; tests/test_adding_a_model.py trains it with the one trainer.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gm_jax.data.dataset import Dataset
from gm_jax.objectives import exact_nll
from gm_jax.tasks import with_tiny_size
from gm_jax.train.defaults import base_config
from gm_jax.train.task import Likelihood, Task, Update


class DiagonalGaussian(nn.Module):
  """log N(x; mean, diag(exp(log_std))^2) per example, and sampling from it."""

  num_dims: int

  def setup(self):
    self.mean = self.param("mean", nn.initializers.zeros, (self.num_dims,))
    self.log_std = self.param("log_std", nn.initializers.zeros, (self.num_dims,))

  def __call__(self, x_BD):
    z = (x_BD - self.mean) * jnp.exp(-self.log_std)
    return jnp.sum(-0.5 * z**2 - self.log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)

  def sample(self, key, n):
    return self.mean + jnp.exp(self.log_std) * jax.random.normal(key, (n, self.num_dims))


def build(config, dataset: Dataset) -> Task:
  """The family's Task: one network, its exact NLL as the loss and the eval metric, and its sampler."""
  model = DiagonalGaussian(dataset.spec.num_dims)
  log_prob = lambda params, x: model.apply({"params": params}, x)

  def init(key, batch):
    return {"model": model.init(key, batch["x"][:1])}

  def sample(params, model_state, key, n):
    return model.apply({"params": params["model"]}, key, n, method=DiagonalGaussian.sample)

  return Task(init=init, updates=(Update("model", exact_nll.make_loss(log_prob)),),
              eval_fn=exact_nll.make_eval(log_prob), sample_fn=sample,
              likelihood=Likelihood("nll_nats", "exact", dataset.spec.num_dims, discrete=False))


@with_tiny_size
def get_config():
  """The toy2d ring, 200 Adam steps (a family's config names its data, optimizer and run length); `tiny`
  gives the trainer's smoke size."""
  config = base_config()
  config.task = "diagonal_gaussian"
  config.data.update(name="toy2d", distribution="ring", num_train=4096, num_test=1024, batch_size=256)
  config.optim.learning_rate = 5e-2
  config.train.update(num_steps=200, log_every=50, checkpoint_every=200, num_samples=256)
  config.eval.feature_space = "none"
  return config
