"""Autoregressive image family: a Gated PixelCNN trained by the exact cross-entropy of the sub-pixels.

-log p(x) = -sum over sub-pixels of log p(x_t | x_<t) is exact, so the reported nll_nats and bpd
(estimator 'exact') are the model's true negative log-likelihood on the discrete data.
config.model: num_classes (> 0: class-conditional, p(x | label); the gated PixelCNN only), features,
  num_layers, first_kernel, kernel, head_features, dropout; architecture row_lstm or diagonal_bilstm makes it
  a PixelRNN (gm_jax.tasks.pixelrnn)
config.eval.sample_temperature: the softmax temperature of every sample (grids and the sample-quality samples)
"""

from __future__ import annotations

import jax.numpy as jnp

from gm_jax.data.dataset import Dataset
from gm_jax.evaluation import ledger
from gm_jax.evaluation.metrics import masked_mean
from gm_jax.models.pixelcnn import PixelCNN, PixelCNNConfig
from gm_jax.objectives import cross_entropy
from gm_jax.tasks import conditioning, pixelrnn
from gm_jax.train.task import Likelihood, Task, Update


def check_odd(name: str, kernel: int) -> None:
  if kernel < 1 or kernel % 2 == 0:
    raise ValueError(f"model.{name}={kernel} must be odd (a centred mask)")


def check_layers(m) -> None:
  """The fields PixelCNN and PixelRNN share. The PixelCNN's first gated block holds its mask-A convolution:
  without it the mask-B output layers would read the input itself, each pixel's logits would see that
  pixel, and a likelihood reported as exact would not be one."""
  if m.num_layers < 1 or m.features < 1 or m.head_features < 1:
    raise ValueError(f"model.num_layers={m.num_layers}, model.features={m.features} and "
                     f"model.head_features={m.head_features} must be >= 1")
  check_odd("first_kernel", m.first_kernel)
  if not 0 <= m.dropout < 1:
    raise ValueError(f"model.dropout={m.dropout} must be in [0, 1)")


def pixelcnn_config(config, dataset: Dataset) -> PixelCNNConfig:
  m = config.model
  check_odd("kernel", m.kernel)
  if m.first_kernel < 3:
    # The first block's horizontal stack reads the input by a mask-A convolution 1 x (first_kernel // 2 + 1)
    # wide; every later block reads features, which carry no pixel of the current row that it did not.
    raise ValueError(f"model.first_kernel={m.first_kernel} must be >= 3 for a PixelCNN (its first, mask-A "
                     f"convolution is its only view of the earlier pixels in a pixel's own row)")
  return PixelCNNConfig(shape=tuple(dataset.spec.shape), num_levels=dataset.spec.num_levels,
                        features=m.features, num_layers=m.num_layers, first_kernel=m.first_kernel,
                        kernel=m.kernel, head_features=m.head_features, dropout=m.dropout,
                        compute_dtype=config.train.compute_dtype,
                        num_classes=conditioning.num_classes(config, dataset))


def build(config, dataset: Dataset) -> Task:
  spec = dataset.spec
  if spec.kind != "image" or len(spec.shape) != 3:
    raise ValueError(f"the pixelcnn task needs integer-level images (H, W, C); {dataset.name!r} is "
                     f"{spec.kind!r} with shape {spec.shape}")
  check_layers(config.model)
  for name in ("features", "head_features", "hidden"):  # each feature is in one colour channel's group
    if name in config.model and config.model[name] % spec.shape[-1]:
      raise ValueError(f"model.{name}={config.model[name]} must be a multiple of the data's {spec.shape[-1]} "
                       f"channels (the masks give each channel an equal group of features)")
  if config.model.architecture in pixelrnn.ARCHITECTURES:
    if "row_kernel" not in config.model:
      raise ValueError(f"model.architecture={config.model.architecture!r} is a PixelRNN, whose fields "
                       f"(hidden, row_kernel) this PixelCNN config lacks; start from a PixelRNN config "
                       f"(experiments/configs/digits_pixelrnn.py)")
    if config.model.architecture == "row_lstm":
      check_odd("row_kernel", config.model.row_kernel)  # the Row LSTM's state-to-state convolution
    if config.model.num_classes:
      raise ValueError("the PixelRNN is not class-conditional; set model.architecture='gated_pixelcnn' or "
                       "model.num_classes=0")
    model = pixelrnn.build_model(config, dataset)  # same output head, loss and sampler
  elif config.model.architecture == "gated_pixelcnn":
    if "kernel" not in config.model:
      raise ValueError("model.architecture='gated_pixelcnn' needs model.kernel, which this PixelRNN config "
                       "lacks; start from a PixelCNN config (experiments/configs/digits_pixelcnn.py)")
    model = PixelCNN(pixelcnn_config(config, dataset))
  else:
    raise ValueError(f"unknown model.architecture {config.model.architecture!r}; use gated_pixelcnn, "
                     f"{' or '.join(pixelrnn.ARCHITECTURES)}")
  num_classes = config.model.num_classes
  conditional = num_classes > 0
  temperature = config.eval.sample_temperature
  if temperature <= 0:
    raise ValueError(f"config.eval.sample_temperature must be > 0 for PixelCNN sampling; got {temperature}")

  def nll_per_image(params, batch, key=None):
    x = batch["x"].astype(jnp.int32)
    train = key is not None
    label = batch["label"] if conditional else None
    logits = model.apply({"params": params["model"]}, x, train, label, rngs={"dropout": key} if train else {})
    nll = cross_entropy.token_nll(logits.reshape(x.shape[0], -1, spec.num_levels), x.reshape(x.shape[0], -1))
    return jnp.sum(nll, axis=-1)

  def loss_fn(params, model_state, batch, key):
    total, count = masked_mean(nll_per_image(params, batch, key), batch["mask"])
    return total / (count * spec.num_dims), ({"nll_nats": (total, count)}, {})

  def eval_fn(params, model_state, batch, key):
    return {"nll_nats": masked_mean(nll_per_image(params, batch), batch["mask"])}

  def init(key, batch):
    label = jnp.zeros((1,), jnp.int32) if conditional else None
    return {"model": model.init(key, jnp.asarray(batch["x"][:1], jnp.int32), False, label)}

  def sample_labels(n):
    return conditioning.class_runs(n, num_classes)

  def sample(params, model_state, key, n):
    label = jnp.asarray(sample_labels(n)) if conditional else None
    x = model.apply({"params": params["model"]}, key, n, temperature, label, method="sample")
    # One network evaluation per sub-pixel; the temperature in the summary beside the samples' quality.
    return x, {"nfe": spec.num_dims, "sample_temperature": temperature}

  return Task(init=init, updates=(Update("model", loss_fn),), eval_fn=eval_fn, sample_fn=sample,
              likelihood=Likelihood("nll_nats", "exact", spec.num_dims, discrete=True,
                                    likelihood_of=ledger.likelihood_of(given_label=conditional)),
              sample_labels=sample_labels if conditional else None)


def default_config():
  """The trainer's defaults plus the PixelCNN fields; experiment configs start from this."""
  from gm_jax.train.defaults import base_config

  config = base_config()
  config.task = "pixelcnn"
  config.model.architecture = "gated_pixelcnn"  # or a PixelRNN: gm_jax.tasks.pixelrnn.ARCHITECTURES
  config.model.features = 64
  config.model.num_layers = 5
  config.model.first_kernel = 7
  config.model.kernel = 3
  config.model.head_features = 256
  config.model.dropout = 0.0
  config.eval.sample_temperature = 1.0
  return config


def tiny(config) -> None:
  """The `:tiny` size of the PixelCNN and PixelRNN architectures: 6 features (a multiple of 3 colour
  channels), 3x3 kernels, two gated layers or one LSTM layer of 3 units."""
  recurrent = "hidden" in config.model
  config.model.update(features=6, first_kernel=3, head_features=6, num_layers=1 if recurrent else 2)
  if recurrent:
    config.model.hidden = 3
  else:
    config.model.kernel = 3
