"""VAE family: ELBO / IWAE / autoencoder training of gm_jax.models.vae.HierarchicalVAE.

config.model: num_classes (> 0: a conditional VAE of p(x | label)), latent_dims, hidden (one tuple of sizes
  per stochastic layer), activation, conv_channels, decoder (bernoulli | gaussian | categorical |
  discretized_logistic), decoder_std (gaussian; 0 = learned);
  posterior (gaussian | iaf: gm_jax.models.vae_iaf) with iaf_steps, iaf_hidden, iaf_context, iaf_transform
config.objective: name (elbo | iwae | autoencoder), beta, kl (analytic | mc), num_samples (K of the
  training bound; 1 for the ELBO)
config.data.binarize: dynamic binarization of integer-level images for the Bernoulli decoder
config.eval: iwae_samples, iwae_chunk (the IWAE log-likelihood estimator of the evaluation)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gm_jax.data import transforms
from gm_jax.data.dataset import Dataset
from gm_jax.evaluation import ledger
from gm_jax.evaluation.metrics import masked_mean
from gm_jax.models.decoders import Decoder
from gm_jax.models.vae import HierarchicalVAE, VAEConfig
from gm_jax.models.vae_iaf import make_vae
from gm_jax.objectives import elbo as elbo_lib
from gm_jax.tasks import conditioning
from gm_jax.train import config_checks, defaults, rng
from gm_jax.train.rng import per_example_keys
from gm_jax.train.task import Likelihood, Task, Update

NUM_PICTURE_EXAMPLES = 16


def make_decoder(config, dataset: Dataset) -> Decoder:
  kind = config.model.decoder
  spec = dataset.spec
  if config.data.binarize and spec.kind != "image":
    raise ValueError(f"data.binarize=True binarizes images, and data {dataset.name!r} is {spec.kind!r}; set "
                     f"data.binarize=False")
  if config.data.binarize and kind != "bernoulli":
    raise ValueError(f"data.binarize=True binarizes the images for the bernoulli decoder, and "
                     f"model.decoder={kind!r} models their {spec.num_levels} levels: set "
                     f"model.decoder='bernoulli' or data.binarize=False")
  if kind == "gaussian":
    if spec.kind == "image" and config.objective.name != "autoencoder":
      # A density at the integer levels, neither dequantized nor binned: not a likelihood of the images (an
      # autoencoder reports none, so it may use it).
      raise ValueError(f"model.decoder='gaussian' models continuous data; {dataset.name!r} has integer-level "
                       f"images: use model.decoder='discretized_logistic', 'categorical' or 'bernoulli'")
    if config.model.decoder_std < 0:
      raise ValueError(f"model.decoder_std={config.model.decoder_std} must be >= 0 (0: learned)")
    return Decoder("gaussian", fixed_std=config.model.decoder_std)
  if spec.kind != "image":
    raise ValueError(f"model.decoder={kind!r} needs integer-level images; data {dataset.name!r} is "
                     f"{spec.kind!r}: use model.decoder='gaussian'")
  if kind == "bernoulli":
    if spec.num_levels != 2 and not config.data.binarize:
      raise ValueError(f"the bernoulli decoder needs binary data: {dataset.name!r} has {spec.num_levels} "
                       f"levels; set data.binarize=True or use a categorical/discretized_logistic decoder")
    return Decoder("bernoulli")
  return Decoder(kind, num_levels=spec.num_levels)


def _is_sizes(sizes, least: int) -> bool:
  return isinstance(sizes, (tuple, list)) and all(isinstance(n, int) and n >= least for n in sizes)


def model_config(config, dataset: Dataset) -> VAEConfig:
  m = config.model
  if not (m.latent_dims and _is_sizes(m.latent_dims, 1)):
    raise ValueError(f"model.latent_dims={m.latent_dims} needs one size >= 1 per stochastic layer, "
                     f"e.g. (32,)")
  if not (isinstance(m.hidden, (tuple, list)) and all(_is_sizes(h, 1) for h in m.hidden)):
    raise ValueError(f"model.hidden={m.hidden} needs a tuple of hidden sizes >= 1 per stochastic layer, "
                     f"e.g. ((512, 256),) for one layer")
  if m.posterior == "iaf" and m.iaf_steps < 0:
    raise ValueError(f"model.iaf_steps={m.iaf_steps} must be >= 0")
  config_checks.check_sizes(config, {"model.conv_channels": 1})
  if m.posterior == "iaf":
    config_checks.check_sizes(config, {"model.iaf_hidden": 1, "model.iaf_context": 1})
  return VAEConfig(x_shape=tuple(dataset.spec.shape), latent_dims=tuple(m.latent_dims),
                   hidden=tuple(tuple(h) for h in m.hidden), decoder=make_decoder(config, dataset),
                   activation=m.activation, conv_channels=tuple(m.conv_channels),
                   compute_dtype=config.train.compute_dtype,
                   num_classes=conditioning.num_classes(config, dataset))


def unread_fields(config) -> dict[str, str]:
  """{field: who reads it} for the model and objective fields this config's settings leave unread."""
  unread = {}
  if config.model.posterior != "iaf":
    unread.update({f"model.{f}": "with model.posterior='iaf'" for f in ("iaf_steps", "iaf_hidden",
                                                                         "iaf_context", "iaf_transform")})
  if config.model.decoder != "gaussian":
    unread["model.decoder_std"] = "by model.decoder='gaussian'"
  if config.objective.name == "iwae":
    unread["objective.kl"] = "by objective.name='elbo'"
  elif config.objective.name == "autoencoder":
    unread.update({f"objective.{f}": "by the elbo and iwae objectives"
                   for f in ("kl", "beta", "num_samples")})
  return unread


def build(config, dataset: Dataset) -> Task:
  cfg = model_config(config, dataset)
  model = make_vae(cfg, config.model)  # model.posterior: gaussian | iaf
  objective = config.objective
  beta, kl_mode, train_k = objective.beta, objective.kl, objective.num_samples
  binarize = cfg.decoder.kind == "bernoulli" and dataset.spec.num_levels != 2
  levels = dataset.spec.num_levels
  conditional = cfg.num_classes > 0

  if objective.name not in ("elbo", "iwae", "autoencoder"):
    raise ValueError(f"unknown objective.name {objective.name!r}; use elbo, iwae or autoencoder")
  if kl_mode not in ("analytic", "mc"):
    raise ValueError(f"objective.kl={kl_mode!r} must be 'analytic' or 'mc'")
  if train_k < 1 or beta < 0:
    raise ValueError(f"objective.num_samples={train_k} must be >= 1 and objective.beta={beta} >= 0")
  defaults.warn_unread_options(config, default_config(), unread_fields(config),
                               f"model.posterior={config.model.posterior!r}, model.decoder="
                               f"{cfg.decoder.kind!r} and objective.name={objective.name!r}")
  if objective.name == "iwae" and beta != 1:
    raise ValueError(f"objective.beta={beta} weights the ELBO's KL; the IWAE bound has no separate KL term: "
                     f"set objective.beta=1 or objective.name='elbo'")

  def observe(batch, key, evaluation: bool = False):
    """The decoder's data, per-example latent keys, the mask and the labels (None if unconditional).

    Bernoulli decoders on grey levels see a dynamic binarization in training; in evaluation each test
    example's binarization is one fixed draw, the same for every run whatever its seed, so that runs are
    scored on one binarized test set."""
    k_obs, k_z = jax.random.split(key)
    x = batch["x"]
    if binarize:
      k_obs = rng.fixed_key(rng.TEST_BINARIZATION) if evaluation else k_obs
      obs_keys = per_example_keys(k_obs, batch["index"])
      x = jax.vmap(lambda k, xi: transforms.binarize(k, xi, levels))(obs_keys, x)
    elif cfg.decoder.kind in ("gaussian", "bernoulli"):
      x = x.astype(jnp.float32)
    return x, per_example_keys(k_z, batch["index"]), batch["mask"], batch["label"] if conditional else None

  def log_weights(params, x, keys_B, k, label):
    return model.apply({"params": params}, x, keys_B, k, label, method="log_weights")

  def autoencoder_nll(params, x, mask, label):
    return masked_mean(-model.apply({"params": params["model"]}, x, label, method=_autoencoder_log_px), mask)

  def loss_fn(params, model_state, batch, key):
    x, keys, mask, label = observe(batch, key)
    if objective.name == "autoencoder":
      total, count = autoencoder_nll(params, x, mask, label)
      return total / count, ({"recon_nll_nats": (total, count)}, {})
    terms = log_weights(params["model"], x, keys, train_k, label)
    parts = elbo_lib.elbo_terms(terms, kl_mode)
    metrics = {name: masked_mean(jnp.mean(v, axis=0), mask) for name, v in parts.items()}
    if objective.name == "elbo":
      per_example = -jnp.mean(parts["recon"] - beta * parts["kl"], axis=0)
    else:
      per_example = -elbo_lib.iwae_bound(elbo_lib.log_importance_weights(terms))
      metrics[f"iwae{train_k}"] = masked_mean(-per_example, mask)
    total, count = masked_mean(per_example, mask)
    return total / count, (metrics, {})

  iwae_k, iwae_chunk = config.eval.iwae_samples, config.eval.iwae_chunk
  if iwae_k < 0 or iwae_chunk < 1 or iwae_k % iwae_chunk:
    raise ValueError(f"eval.iwae_samples={iwae_k} must be >= 0 (0: the ELBO only) and a multiple of "
                     f"eval.iwae_chunk={iwae_chunk} >= 1")

  def eval_fn(params, model_state, batch, key):
    x, keys, mask, label = observe(batch, key, evaluation=True)
    if objective.name == "autoencoder":
      return {"recon_nll_nats": autoencoder_nll(params, x, mask, label)}
    parts = elbo_lib.elbo_terms(log_weights(params["model"], x, keys, 1, label), "analytic")
    metrics = {name: masked_mean(v[0], mask) for name, v in parts.items()}
    if iwae_k:
      log_px = elbo_lib.iwae_estimate(lambda xx, kk, n: log_weights(params["model"], xx, kk, n, label), x,
                                      jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, 1), iwae_k,
                                      iwae_chunk)
      metrics["nll_nats"] = masked_mean(-log_px, mask)
    return metrics

  # An autoencoder's Gaussian decoder on images draws reals in level units: its samples are judged, and
  # pictured, at the nearest level, as the real images they are compared with.
  real_draws_of_levels = cfg.decoder.kind == "gaussian" and dataset.spec.kind == "image"

  def to_data_levels(x):
    if real_draws_of_levels:
      return jnp.clip(jnp.round(x), 0, levels - 1).astype(jnp.int32)
    return x * (levels - 1) if binarize else x

  def sample_labels(n):
    return conditioning.class_runs(n, cfg.num_classes)

  def real_as_modelled(x_levels, key):
    """Real grey-level images binarized as the decoder sees them, at the levels its samples take."""
    return np.asarray(to_data_levels(transforms.binarize(key, jnp.asarray(x_levels), levels)), x_levels.dtype)

  def sample(params, model_state, key, n):
    label = jnp.asarray(sample_labels(n)) if conditional else None
    return to_data_levels(model.apply({"params": params["model"]}, key, n, label,
                                      method=HierarchicalVAE.sample))

  def pictures(params, model_state, key, batch):
    """Test images beside their reconstructions, and interpolations between pairs of test images."""
    if dataset.spec.kind != "image":
      return {}
    x, _, _, label = observe(batch, key, evaluation=True)
    x = x[:NUM_PICTURE_EXAMPLES]
    label = label[:NUM_PICTURE_EXAMPLES] if conditional else None
    variables = {"params": params["model"]}
    z = model.apply(variables, x, label, method=HierarchicalVAE.encode_mean)
    recon = model.apply(variables, z, label, method=_decode_mean).reshape(x.shape)
    half = x.shape[0] // 2
    alphas = jnp.linspace(0.0, 1.0, 8)
    z_path = (1 - alphas[None, :, None]) * z[:half, None] + alphas[None, :, None] * z[half:2 * half, None]
    # A conditional decoder keeps the first image's label along the path: the style moves, the class not.
    path_label = jnp.repeat(label[:half], len(alphas)) if conditional else None
    interp = model.apply(variables, z_path.reshape(-1, z.shape[-1]), path_label, method=_decode_mean)
    shape = dataset.spec.shape
    return {"reconstructions": to_data_levels(jnp.concatenate([x, recon]).reshape(-1, *shape)),
            "interpolations": to_data_levels(interp.reshape(-1, *shape))}

  discrete = cfg.decoder.is_discrete

  def summarize(means):
    if objective.name == "autoencoder":
      return {"note": "an autoencoder has no likelihood; recon_nll_nats is -log p(x|z)"}
    out = {"elbo_nll_nats": -means["elbo"]}
    if discrete:
      out["elbo_bpd"] = ledger.bits_per_dim(-means["elbo"], dataset.spec.num_dims)
    return out

  likelihood = None  # IWAE-K's estimate when evaluated, else the ELBO's bound
  if objective.name != "autoencoder":
    of = ledger.likelihood_of(binarized=binarize, given_label=conditional)
    likelihood = (Likelihood("nll_nats", f"iwae_{iwae_k}", dataset.spec.num_dims, discrete, of) if iwae_k else
                  Likelihood("elbo_nll_nats", "elbo", dataset.spec.num_dims, discrete, of))

  def init(key, batch):
    x, _, _, label = observe(batch, key)
    return {"model": model.init(key, x[:2], per_example_keys(key, batch["index"][:2]), 1,
                                None if label is None else label[:2], method="log_weights")}

  return Task(init=init, updates=(Update("model", loss_fn),), eval_fn=eval_fn, likelihood=likelihood,
              summarize=summarize, sample_fn=sample, pictures_fn=pictures,
              sample_labels=sample_labels if conditional else None,
              real_as_modelled=real_as_modelled if binarize else None)


def _autoencoder_log_px(module: HierarchicalVAE, x, label_B):
  """log p(x | z_1 = mean of q(z_1 | x)): the deterministic autoencoder's reconstruction term."""
  out = module.decode(module.encode_mean(x, label_B), label_B)
  return module.config.decoder.log_prob(out, x.reshape(x.shape[0], -1))


def _decode_mean(module: HierarchicalVAE, z1, label_B):
  return module.config.decoder.mean(module.decode(z1, label_B))



def default_config():
  """The trainer's defaults plus the VAE family's fields; experiment configs start from this."""
  import ml_collections

  from gm_jax.train.defaults import base_config

  config = base_config()
  config.task = "vae"
  config.data.binarize = False
  config.model.latent_dims = (16,)
  config.model.hidden = ((200, 200),)
  config.model.activation = "tanh"
  config.model.conv_channels = ()
  config.model.decoder = "categorical"
  config.model.decoder_std = 0.0
  config.model.posterior = "gaussian"  # gaussian | iaf (refined by the iaf_* fields' flow)
  config.model.iaf_steps = 2
  config.model.iaf_hidden = (64, 64)
  config.model.iaf_context = 16
  config.model.iaf_transform = "affine"  # affine | spline
  config.objective = ml_collections.ConfigDict()
  config.objective.name = "elbo"
  config.objective.beta = 1.0
  config.objective.kl = "analytic"
  config.objective.num_samples = 1
  config.eval.iwae_samples = 5000
  config.eval.iwae_chunk = 500
  return config


def tiny(config) -> None:
  """The VAE family's `:tiny` size: 32-unit layers (as many as the config has), a 16-unit IAF, and an
  importance-weighted bound of 10 samples in chunks of 5."""
  config.model.hidden = tuple((32,) * len(layers) for layers in config.model.hidden)
  if config.model.posterior == "iaf":  # (otherwise unread, and named as such)
    config.model.iaf_hidden = (16,)
  config.eval.update(iwae_samples=10, iwae_chunk=5)
