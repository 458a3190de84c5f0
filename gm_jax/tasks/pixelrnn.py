"""PixelRNN in the autoregressive image family: the pixelcnn task with config.model.architecture =
row_lstm | diagonal_bilstm builds gm_jax.models.pixelrnn.PixelRNN, trained by the same exact
cross-entropy and sampled by the same raster sampler as the Gated PixelCNN.

config.model: architecture, features (residual stream), hidden (LSTM state), num_layers, first_kernel,
  row_kernel (Row LSTM), head_features, dropout
"""

from __future__ import annotations

from gm_jax.data.dataset import Dataset
from gm_jax.models.pixelrnn import PixelRNN, PixelRNNConfig
from gm_jax.train import defaults

ARCHITECTURES = ("row_lstm", "diagonal_bilstm")


def pixelrnn_config(config, dataset: Dataset) -> PixelRNNConfig:
  m = config.model
  return PixelRNNConfig(shape=tuple(dataset.spec.shape), num_levels=dataset.spec.num_levels,
                        architecture=m.architecture, features=m.features, hidden=m.hidden,
                        num_layers=m.num_layers, first_kernel=m.first_kernel, row_kernel=m.row_kernel,
                        head_features=m.head_features, dropout=m.dropout,
                        compute_dtype=config.train.compute_dtype)


def build_model(config, dataset: Dataset) -> PixelRNN:
  m = config.model
  if m.hidden < 1:
    raise ValueError(f"model.hidden={m.hidden} must be >= 1 (the LSTM state's size)")
  if m.first_kernel < 3:
    # The mask-A input convolution is the network's only path from the pixels: at 1 x 1 it reads none.
    raise ValueError(f"model.first_kernel={m.first_kernel} must be >= 3 for a PixelRNN (its mask-A input "
                     f"convolution is its only view of the earlier pixels)")
  if m.architecture != "row_lstm":
    defaults.warn_unread_options(config, default_config(), {"model.row_kernel": "by row_lstm"},
                                 f"model.architecture={m.architecture!r}")
  return PixelRNN(pixelrnn_config(config, dataset))


def default_config():
  """The trainer's defaults plus the PixelRNN fields; experiment configs start from this."""
  from gm_jax.tasks.pixelcnn import default_config as pixelcnn_default

  config = pixelcnn_default()
  config.model.architecture = "diagonal_bilstm"
  config.model.features = 32
  config.model.hidden = 32
  config.model.num_layers = 2
  config.model.first_kernel = 7
  config.model.row_kernel = 3
  config.model.head_features = 64
  del config.model["kernel"]  # a PixelCNN field
  return config
