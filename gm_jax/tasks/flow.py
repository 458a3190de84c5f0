"""Normalizing-flow family: exact maximum likelihood (continuous points) or the dequantization bound
(integer-level images), through gm_jax.models.flows.

config.model: architecture (nice | realnvp | glow | nsf | maf | iaf), hidden, num_levels, steps_per_level,
  base (standard | learned), preprocess (none | logit | shift), logit_alpha, conditioner (conv | glow),
  transform (maf / iaf: affine | spline), num_bins, tail_bound (splines), coupling_scale_init,
  conditioner_bias_init (vectors' MLP conditioners: zeros | uniform), scan_steps, scan_blocks
config.objective: dequantization (uniform | variational), dequantizer_hidden, dequantizer_couplings
config.eval.sample_temperature: the base std multiplier of every sample (grids and the sample-quality samples)
"""

from __future__ import annotations

from gm_jax.data.dataset import Dataset
from gm_jax.evaluation.metrics import masked_mean
from gm_jax.models import bijectors as bj
from gm_jax.models.flows import DequantizedFlow, Flow, FlowConfig, check_architecture
from gm_jax.objectives import exact_nll
from gm_jax.train import config_checks, defaults
from gm_jax.train.rng import per_example_keys
from gm_jax.train.task import Likelihood, Task, Update, nonfinite_samples


def flow_config(config, dataset: Dataset) -> FlowConfig:
  m = config.model
  check_architecture(m.architecture)  # first: the checks below name fields by the architecture
  config_checks.check_sizes(config, {"model.hidden": 1})
  if config.objective.dequantization == "variational":
    config_checks.check_sizes(config, {"objective.dequantizer_hidden": 1,
                                       "objective.dequantizer_couplings": 1})
  if m.num_levels < 1 or m.steps_per_level < 1:
    raise ValueError(f"model.num_levels={m.num_levels} and model.steps_per_level={m.steps_per_level} must "
                     f"be >= 1")
  images = dataset.spec.kind == "image"
  if images and m.conditioner not in ("conv", "glow"):
    raise ValueError(f"model.conditioner={m.conditioner!r}: image flows' couplings take conv or glow "
                     f"conditioners (vectors' always take MLPs)")
  autoregressive = m.architecture in ("maf", "iaf")
  if images and not autoregressive and m.conditioner == "glow" and len(m.hidden) != 1:
    raise ValueError(f"model.conditioner='glow' has one width (its convolutions' features), but "
                     f"model.hidden={tuple(m.hidden)} has {len(m.hidden)} entries; set model.hidden=(width,)")
  if autoregressive and m.transform not in ("affine", "spline"):
    raise ValueError(f"unknown model.transform {m.transform!r} for {m.architecture}; use affine or spline")
  if m.preprocess == "logit" and not images:
    raise ValueError("model.preprocess='logit' maps dequantized images in (0, 1) to the real line; points "
                     "are not in (0, 1): set model.preprocess='none'")
  if not 0 < m.logit_alpha < 0.5:
    # At 0 a dequantized value of exactly 0 or 1 (float32 rounding of k + u) has an infinite logit.
    raise ValueError(f"model.logit_alpha={m.logit_alpha} must be in (0, 0.5) (the logit of "
                     f"alpha + (1 - 2 alpha) x)")
  if images and not m.hidden:
    raise ValueError("model.hidden=() gives an image flow's convolutional conditioners no width; give at "
                     "least one entry")
  spline = m.architecture == "nsf" or (m.architecture in ("maf", "iaf") and m.transform == "spline")
  if spline and (m.num_bins < 1 or not m.tail_bound > 0):
    raise ValueError(f"model.num_bins={m.num_bins} must be >= 1 and model.tail_bound={m.tail_bound} > 0 "
                     f"(the splines' interval [-tail_bound, tail_bound])")
  if m.conditioner_bias_init not in bj.HIDDEN_BIAS_INITS:
    raise ValueError(f"unknown model.conditioner_bias_init {m.conditioner_bias_init!r}; use "
                     f"{' or '.join(bj.HIDDEN_BIAS_INITS)}")
  defaults.warn_unread_options(config, default_config(), unread_fields(config, images),
                               f"model.architecture={m.architecture!r} on {dataset.spec.kind}")
  return FlowConfig(architecture=m.architecture, x_shape=tuple(dataset.spec.shape), hidden=tuple(m.hidden),
                    num_levels=m.num_levels, steps_per_level=m.steps_per_level, base=m.base,
                    preprocess=m.preprocess, logit_alpha=m.logit_alpha, conditioner=m.conditioner,
                    transform=m.transform, num_bins=m.num_bins, tail_bound=m.tail_bound,
                    coupling_scale_init=m.coupling_scale_init,
                    conditioner_bias_init=m.conditioner_bias_init, scan_steps=m.scan_steps,
                    scan_blocks=m.scan_blocks,
                    compute_dtype=config.train.compute_dtype)


def unread_fields(config, images: bool) -> dict[str, str]:
  """{field: who reads it} for the model and objective fields this config's settings leave unread."""
  m, arch = config.model, config.model.architecture
  autoregressive = arch in ("maf", "iaf")
  unread = {}
  if not autoregressive:
    unread["model.transform"] = "by maf and iaf"
  if not (arch == "nsf" or autoregressive and m.transform == "spline"):
    spline_readers = "by nsf, and by maf and iaf with model.transform='spline'"
    unread.update({"model.num_bins": spline_readers, "model.tail_bound": spline_readers})
  if not (images and not autoregressive and m.conditioner == "conv"):
    unread["model.scan_blocks"] = "by image flows' conv conditioners (model.conditioner='conv')"
  if not (arch in ("realnvp", "glow") or autoregressive and m.transform == "affine"):
    unread["model.coupling_scale_init"] = "by realnvp, glow, and maf and iaf with model.transform='affine'"
  if images or autoregressive:
    unread["model.conditioner_bias_init"] = "by the MLP conditioners of nice, realnvp, glow and nsf (vectors)"
  if m.preprocess != "logit":
    unread["model.logit_alpha"] = "with model.preprocess='logit'"
  dequantizer = ("objective.dequantizer_hidden", "objective.dequantizer_couplings")
  if not images:
    unread.update({field: "on images" for field in ("model.conditioner", "objective.dequantization",
                                                    *dequantizer)})
  elif config.objective.dequantization != "variational":
    unread.update({field: "with objective.dequantization='variational'" for field in dequantizer})
  return unread


def build(config, dataset: Dataset) -> Task:
  cfg = flow_config(config, dataset)
  temperature = config.eval.sample_temperature
  if temperature <= 0:
    raise ValueError(f"config.eval.sample_temperature must be > 0 for flow sampling; got {temperature}")
  spec = dataset.spec

  if spec.kind == "points":
    model = Flow(cfg)
    log_prob = lambda params, x: model.apply({"params": params}, x)
    loss_fn, eval_fn = exact_nll.make_loss(log_prob), exact_nll.make_eval(log_prob)
    estimator, discrete = "exact", False

    def init(key, batch):
      return {"model": model.init(key, batch["x"])}

    def sample(params, model_state, key, n):
      x = model.apply({"params": params["model"]}, key, n, temperature, method=Flow.sample)
      return x, {"sample_temperature": temperature}  # in the summary beside the samples' quality

  elif spec.kind == "image":
    obj = config.objective
    if obj.dequantization == "variational" and not obj.dequantizer_hidden:
      raise ValueError("objective.dequantizer_hidden=() gives the variational dequantizer's conditioners no "
                       "width; give at least one entry")
    model = DequantizedFlow(cfg, spec.num_levels, obj.dequantization, tuple(obj.dequantizer_hidden),
                            obj.dequantizer_couplings)
    estimator, discrete = "elbo", True  # a dequantization lower bound on log P(x)

    def bound(params, batch, key):
      keys = per_example_keys(key, batch["index"])
      return model.apply({"params": params["model"]}, batch["x"], keys)

    def loss_fn(params, model_state, batch, key):
      total, count = masked_mean(-bound(params, batch, key), batch["mask"])
      return total / count, ({"nll_nats": (total, count)}, {})

    def eval_fn(params, model_state, batch, key):
      return {"nll_nats": masked_mean(-bound(params, batch, key), batch["mask"])}

    def init(key, batch):
      return {"model": model.init(key, batch["x"], per_example_keys(key, batch["index"]))}

    def sample(params, model_state, key, n):
      levels, y = model.apply({"params": params["model"]}, key, n, temperature, True,
                              method=DequantizedFlow.sample)
      return levels, {"nonfinite": nonfinite_samples(y), "sample_temperature": temperature}

  else:
    raise ValueError(f"flows model points or images; data {dataset.name!r} is {spec.kind!r}")

  return Task(init=init, updates=(Update("model", loss_fn),), eval_fn=eval_fn, sample_fn=sample,
              likelihood=Likelihood("nll_nats", estimator, spec.num_dims, discrete))


def default_config():
  """The trainer's defaults plus the flow family's fields; experiment configs start from this."""
  import ml_collections

  from gm_jax.train.defaults import base_config

  config = base_config()
  config.task = "flow"
  config.model.architecture = "realnvp"
  config.model.hidden = (128, 128)
  config.model.num_levels = 1
  config.model.steps_per_level = 8
  config.model.base = "standard"
  config.model.preprocess = "none"
  config.model.logit_alpha = 0.05
  config.model.conditioner = "conv"
  config.model.coupling_scale_init = 1.0
  config.model.conditioner_bias_init = "zeros"  # vectors' MLP conditioners: zeros | uniform (hidden biases)
  config.model.scan_steps = False  # glow / nsf images, nice / realnvp vectors: repeated steps as one nn.scan
  config.model.scan_blocks = False  # conv conditioners: the residual blocks as one nn.scan (compiled once)
  config.model.transform = "affine"  # maf / iaf: affine | spline
  config.model.num_bins = 8  # spline bins
  config.model.tail_bound = 3.0  # splines are the identity outside [-tail_bound, tail_bound]
  config.objective = ml_collections.ConfigDict()
  config.objective.dequantization = "uniform"
  config.objective.dequantizer_hidden = (32, 32)
  config.objective.dequantizer_couplings = 4
  config.eval.sample_temperature = 1.0
  return config


def tiny(config) -> None:
  """The flow family's `:tiny` size: one step per level of 8-unit conditioners, at most two levels."""
  hidden = (8,) if config.model.conditioner == "glow" else (8, 8)  # Glow's conditioner has one width
  config.model.update(hidden=hidden, steps_per_level=1, num_levels=min(config.model.num_levels, 2))
  unread = unread_fields(config, images=config.data.name != "toy2d")
  if "model.num_bins" not in unread:  # the fields no setting reads stay at their defaults (no warning)
    config.model.num_bins = 4
  if "objective.dequantizer_hidden" not in unread:
    config.objective.update(dequantizer_hidden=(8,), dequantizer_couplings=2)
