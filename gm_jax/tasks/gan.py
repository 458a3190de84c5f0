"""GAN family: a generator and a discriminator (critic) as two networks of the one trainer.

Each train step runs objective.n_critic discriminator updates, each on its own microbatch of real data
(so data.batch_size real examples per update), then one generator update, inside one compiled step.

config.model: num_classes (> 0: class-conditional, the generator given the label, the discriminator a
  projection discriminator; fakes take the labels of the real microbatch they are judged beside),
  latent_dim; points: generator_hidden, discriminator_hidden (MLPs); images: features and
  discriminator_norm (batch | layer | none) of the seed's DCGAN (gm_jax.models.dcgan)
config.objective: loss (minimax | non_saturating | wgan | wgan_gp | hinge), n_critic, gp_weight
config.optim: the generator's optimizer; config.optim_d: the discriminator's (see gm_jax.train.optim;
  WGAN sets optim_d.weight_clip). Both schedules count train steps: the n_critic updates of one step
  share its learning rate.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gm_jax.data import toy2d, transforms
from gm_jax.data.dataset import Dataset
from gm_jax.evaluation import mode_coverage
from gm_jax.evaluation.metrics import masked_mean
from gm_jax.models.dcgan import DCGANDiscriminator, DCGANGenerator, normalized_discriminator_layers
from gm_jax.models.gan_mlp import MLPDiscriminator, MLPGenerator
from gm_jax.objectives import adversarial
from gm_jax.tasks import conditioning
from gm_jax.train import defaults
from gm_jax.train.rng import per_example_keys
from gm_jax.train.task import Task, Update, nonfinite_samples


def make_networks(config, dataset: Dataset):
  """(generator, discriminator) for the data: MLPs for points, the seed's DCGAN for images."""
  m, spec, cd = config.model, dataset.spec, config.train.compute_dtype
  classes = conditioning.num_classes(config, dataset)
  if m.latent_dim < 1:
    raise ValueError(f"model.latent_dim={m.latent_dim} must be >= 1")
  if spec.kind == "points":
    defaults.warn_unread_options(config, default_config(), {f"model.{f}": "by the DCGAN (images)" for f in
                                                            ("features", "discriminator_norm")}, "points")
    if not all(width >= 1 for width in (*m.generator_hidden, *m.discriminator_hidden)):
      raise ValueError(f"model.generator_hidden={tuple(m.generator_hidden)} and model.discriminator_hidden="
                       f"{tuple(m.discriminator_hidden)} need widths >= 1")
    return (MLPGenerator(tuple(m.generator_hidden), spec.shape[0], cd, classes),
            MLPDiscriminator(tuple(m.discriminator_hidden), cd, classes))
  if spec.kind == "image":
    size, width, channels = spec.shape
    if size != width:
      raise ValueError(f"the DCGAN draws square images and the data's are {size} x {width}; resize them to a "
                       f"square (data.image_size, for image folders and TFDS)")
    defaults.warn_unread_options(config, default_config(), {f"model.{f}": "by the MLPs (points)" for f in
                                                            ("generator_hidden", "discriminator_hidden")},
                                 "images")
    if m.features < 1:
      raise ValueError(f"model.features={m.features} must be >= 1")
    norm = m.discriminator_norm
    if norm not in ("batch", "layer", "none"):
      raise ValueError(f"unknown model.discriminator_norm {norm!r}; use batch, layer or none")
    if config.objective.loss == "wgan_gp" and norm == "batch" and normalized_discriminator_layers(size):
      raise ValueError("a WGAN-GP critic must not use BatchNorm (the penalty is per example); set "
                       "model.discriminator_norm='layer'")
    return (DCGANGenerator(size, channels, m.features, cd, classes),
            DCGANDiscriminator(size, m.features, norm, cd, classes))
  raise ValueError(f"the gan task models points or images; data {dataset.name!r} is {spec.kind!r}")


def build(config, dataset: Dataset) -> Task:
  m, obj, spec = config.model, config.objective, dataset.spec
  loss_kind = adversarial.check_loss(obj.loss)
  n_critic, gp_weight = obj.n_critic, obj.gp_weight
  if n_critic < 1 or gp_weight < 0:
    raise ValueError(f"objective.n_critic={n_critic} must be >= 1 and objective.gp_weight={gp_weight} >= 0")
  # Without a Lipschitz constraint a critic's objective is unbounded and its outputs run off.
  if loss_kind == "wgan" and not 0 < config.optim_d.weight_clip < float("inf"):
    raise ValueError("objective.loss='wgan' needs the critic's weights clipped; set optim_d.weight_clip "
                     "(0.01 in the paper) or use objective.loss='wgan_gp'")
  if loss_kind == "wgan_gp" and not gp_weight:
    raise ValueError("objective.loss='wgan_gp' with objective.gp_weight=0 leaves the critic unconstrained; "
                     "set objective.gp_weight (10 in the paper)")
  if loss_kind != "wgan_gp":
    defaults.warn_unread_options(config, default_config(), {"objective.gp_weight": "by loss 'wgan_gp'"},
                                 f"objective.loss={obj.loss!r}")
  generator, discriminator = make_networks(config, dataset)
  images = spec.kind == "image"
  num_classes = config.model.num_classes
  conditional = num_classes > 0

  def run(module, name, params, model_state, x, label, train, updated):
    """Applies a network (given the labels if conditional, else None); in training its batch statistics
    (if any) are updated into `updated`."""
    state = updated.get(name, model_state[name])
    variables = {"params": params[name], **state}
    if train and state:
      out, new_state = module.apply(variables, x, label, train=True, mutable=list(state))
      updated[name] = new_state
      return out
    return module.apply(variables, x, label, train=False)

  def labels(batch):
    return batch["label"] if conditional else None

  def noise(key, index_B):
    return jax.vmap(lambda k: jax.random.normal(k, (m.latent_dim,)))(per_example_keys(key, index_B))

  def real_data(batch):
    return transforms.to_symmetric(batch["x"], spec.num_levels) if images else batch["x"]

  def d_loss_fn(params, model_state, batch, key):
    k_z, k_gp = jax.random.split(key)
    updated = {}
    real, label = real_data(batch), labels(batch)
    fake = jax.lax.stop_gradient(
        run(generator, "generator", params, model_state, noise(k_z, batch["index"]), label, True, updated))
    real_logits = run(discriminator, "discriminator", params, model_state, real, label, True, updated)
    fake_logits = run(discriminator, "discriminator", params, model_state, fake, label, True, updated)
    per_example = adversarial.discriminator_loss(loss_kind, real_logits, fake_logits)
    metrics = {"d_real": masked_mean(real_logits, batch["mask"]),
               "d_fake": masked_mean(fake_logits, batch["mask"])}
    if loss_kind == "wgan_gp":
      critic = lambda x: run(discriminator, "discriminator", params, model_state, x, label, False, {})
      gp = adversarial.gradient_penalty(critic, real, fake, k_gp)
      metrics["gradient_penalty"] = masked_mean(gp, batch["mask"])
      per_example = per_example + gp_weight * gp
    total, count = masked_mean(per_example, batch["mask"])
    return total / count, (metrics, updated)

  def g_loss_fn(params, model_state, batch, key):
    # One fake per real example of one critic microbatch: the first batch_size / n_critic indices.
    size = batch["index"].shape[0] // n_critic
    label = None if not conditional else batch["label"][:size]
    updated = {}
    fake = run(generator, "generator", params, model_state, noise(key, batch["index"][:size]), label,
               True, updated)
    fake_logits = run(discriminator, "discriminator", params, model_state, fake, label, True, updated)
    return jnp.mean(adversarial.generator_loss(loss_kind, fake_logits)), ({}, updated)

  mixture = dataset.spec.extras.get("distribution")
  if not isinstance(mixture, toy2d.IsotropicMixture):
    mixture = None

  def eval_fn(params, model_state, batch, key):
    """The discriminator's loss on test data against one fresh fake per test example (the game's value,
    estimated); on Gaussian-mixture data also the fakes' high-quality histogram over the modes."""
    label = labels(batch)
    fake = run(generator, "generator", params, model_state, noise(key, batch["index"]), label, False, {})
    fake_logits = run(discriminator, "discriminator", params, model_state, fake, label, False, {})
    real_logits = run(discriminator, "discriminator", params, model_state, real_data(batch), label, False, {})
    value = adversarial.discriminator_loss(loss_kind, real_logits, fake_logits)
    metrics = {"d_loss": masked_mean(value, batch["mask"]),
               "g_loss": masked_mean(adversarial.generator_loss(loss_kind, fake_logits), batch["mask"])}
    if mixture is not None:
      assignment = mode_coverage.high_quality_assignment(fake, jnp.asarray(mixture.means_K2), mixture.std)
      for k in range(assignment.shape[1]):
        metrics[f"mode_{k:02d}"] = masked_mean(assignment[:, k], batch["mask"])
    return metrics

  def summarize(means):
    if mixture is None:
      return {}
    return mode_coverage.summarize_histogram([means[f"mode_{k:02d}"] for k in range(len(mixture.means_K2))])

  def sample_labels(n):
    return conditioning.class_runs(n, num_classes)

  def sample(params, model_state, key, n):
    label = jnp.asarray(sample_labels(n)) if conditional else None
    out = run(generator, "generator", params, model_state, noise(key, jnp.arange(n)), label, False, {})
    if not images:
      return out
    return transforms.from_symmetric(out, spec.num_levels), {"nonfinite": nonfinite_samples(out)}

  def init(key, batch):
    k_g, k_d = jax.random.split(key)
    z = jnp.zeros((2, m.latent_dim))
    label = jnp.zeros((2,), jnp.int32) if conditional else None
    return {"generator": generator.init(k_g, z, label, train=False),
            "discriminator": discriminator.init(k_d, real_data(batch)[:2], label, train=False)}

  updates = (Update("discriminator", d_loss_fn, repeats=n_critic, optimizer="optim_d"),
             Update("generator", g_loss_fn))
  return Task(init=init, updates=updates, eval_fn=eval_fn, summarize=summarize, sample_fn=sample,
              sample_labels=sample_labels if conditional else None)


def default_config():
  """The trainer's defaults plus the GAN family's fields; experiment configs start from this."""
  import ml_collections

  from gm_jax.train.defaults import base_config

  config = base_config()
  config.task = "gan"
  config.model.latent_dim = 2
  config.model.generator_hidden = (128, 128, 128)
  config.model.discriminator_hidden = (128, 128, 128)
  config.model.features = 64
  config.model.discriminator_norm = "batch"
  config.objective = ml_collections.ConfigDict()
  config.objective.loss = "non_saturating"
  config.objective.n_critic = 1
  config.objective.gp_weight = 10.0
  config.optim_d = ml_collections.ConfigDict(config.optim.to_dict())  # the discriminator's optimizer
  return config


def tiny(config) -> None:
  """The GAN family's `:tiny` size: 16-unit MLPs for the 2-D toy densities, DCGANs of 4 base features
  for images (each network's fields are named as unread with the other's data)."""
  if config.data.name == "toy2d":
    config.model.update(generator_hidden=(16,), discriminator_hidden=(16,))
  else:
    config.model.features = 4


def use_wgan_gp(config) -> None:
  """WGAN-GP's recipe (Gulrajani et al. 2017): the gradient penalty (weight 10), 5 critic updates per
  generator update, Adam with lr 1e-4, b1 0 and b2 0.9 for both networks."""
  config.objective.update(loss="wgan_gp", n_critic=5, gp_weight=10.0)
  for optim in (config.optim, config.optim_d):
    optim.update(name="adam", learning_rate=1e-4, b1=0.0, b2=0.9)
