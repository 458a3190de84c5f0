"""GAN family: a generator and a discriminator (critic) as two networks of the one trainer.

Each train step runs objective.n_critic discriminator updates, each on its own microbatch of real data
(so data.batch_size real examples per update), then one generator update, inside one compiled step.

config.model: latent_dim, generator_hidden, discriminator_hidden
config.objective: loss (minimax | non_saturating | wgan | wgan_gp | hinge), n_critic, gp_weight
config.optim: the generator's optimizer; config.optim_d: the discriminator's (see gm_jax.train.optim;
  WGAN sets optim_d.weight_clip)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gm_jax.data.dataset import Dataset
from gm_jax.evaluation.metrics import masked_mean
from gm_jax.models.gan_mlp import MLPDiscriminator, MLPGenerator
from gm_jax.objectives import adversarial
from gm_jax.train.optim import make_optimizer
from gm_jax.train.rng import per_example_keys
from gm_jax.train.task import Task, Update


def build(config, dataset: Dataset) -> Task:
  if dataset.spec.kind != "points":
    raise ValueError(f"the gan task currently models 2-D points (toy2d); data {dataset.name!r} is "
                     f"{dataset.spec.kind!r}")
  m, obj = config.model, config.objective
  loss_kind = adversarial.check_loss(obj.loss)
  n_critic, gp_weight = obj.n_critic, obj.get("gp_weight", 10.0)
  generator = MLPGenerator(tuple(m.generator_hidden), dataset.spec.shape[0])
  discriminator = MLPDiscriminator(tuple(m.discriminator_hidden))

  def noise(key, index_B):
    return jax.vmap(lambda k: jax.random.normal(k, (m.latent_dim,)))(per_example_keys(key, index_B))

  def generate(params, key, index_B):
    return generator.apply({"params": params["generator"]}, noise(key, index_B))

  def critic(params):
    return lambda x: discriminator.apply({"params": params["discriminator"]}, x)

  def d_loss_fn(params, model_state, batch, key):
    k_z, k_gp = jax.random.split(key)
    real = batch["x"]
    fake = jax.lax.stop_gradient(generate(params, k_z, batch["index"]))
    f = critic(params)
    real_logits, fake_logits = f(real), f(fake)
    per_example = adversarial.discriminator_loss(loss_kind, real_logits, fake_logits)
    metrics = {"d_real": masked_mean(real_logits, batch["mask"]), "d_fake": masked_mean(fake_logits, batch["mask"])}
    if loss_kind == "wgan_gp":
      gp = adversarial.gradient_penalty(f, real, fake, k_gp)
      metrics["gradient_penalty"] = masked_mean(gp, batch["mask"])
      per_example = per_example + gp_weight * gp
    total, count = masked_mean(per_example, batch["mask"])
    return total / count, (metrics, {})

  def g_loss_fn(params, model_state, batch, key):
    # One fake per real example of one critic microbatch: the first batch_size / n_critic indices.
    index = batch["index"][: batch["index"].shape[0] // n_critic]
    fake_logits = critic(params)(generate(params, key, index))
    per_example = adversarial.generator_loss(loss_kind, fake_logits)
    return jnp.mean(per_example), ({}, {})

  def eval_fn(params, model_state, batch, key):
    """The discriminator's loss on test data against fresh fakes (the game's value, estimated)."""
    f = critic(params)
    fake_logits = f(generate(params, key, batch["index"]))
    value = adversarial.discriminator_loss(loss_kind, f(batch["x"]), fake_logits)
    return {"d_loss": masked_mean(value, batch["mask"]),
            "g_loss": masked_mean(adversarial.generator_loss(loss_kind, fake_logits), batch["mask"])}

  def sample(params, model_state, key, n):
    return generate(params, key, jnp.arange(n))

  def init(key, batch):
    k_g, k_d = jax.random.split(key)
    return {"generator": generator.init(k_g, jnp.zeros((1, m.latent_dim))),
            "discriminator": discriminator.init(k_d, batch["x"][:1])}

  tx_g, schedule_g = make_optimizer(config.optim, config.train.num_steps)
  tx_d, schedule_d = make_optimizer(config.optim_d, config.train.num_steps)
  return Task(init=init,
              updates=(Update("discriminator", d_loss_fn, repeats=n_critic), Update("generator", g_loss_fn)),
              optimizers={"discriminator": tx_d, "generator": tx_g},
              schedules={"discriminator": schedule_d, "generator": schedule_g},
              eval_fn=eval_fn, summarize=lambda means: {"estimator": None}, sample_fn=sample)


def default_config():
  """The trainer's defaults plus the GAN family's fields; experiment configs start from this."""
  import ml_collections

  from gm_jax.train.defaults import base_config

  config = base_config()
  config.task = "gan"
  config.model.latent_dim = 2
  config.model.generator_hidden = (128, 128, 128)
  config.model.discriminator_hidden = (128, 128, 128)
  config.objective = ml_collections.ConfigDict()
  config.objective.loss = "non_saturating"
  config.objective.n_critic = 1
  config.objective.gp_weight = 10.0
  config.optim_d = ml_collections.ConfigDict(config.optim.to_dict())
  config.optim_d.weight_clip = 0.0
  config.optim.weight_clip = 0.0
  return config
