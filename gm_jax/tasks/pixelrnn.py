"""PixelRNN in the autoregressive image family: the pixelcnn task with config.model.architecture =
row_lstm | diagonal_bilstm builds gm_jax.models.pixelrnn.PixelRNN, trained by the same exact
cross-entropy and sampled by the same raster sampler as the Gated PixelCNN.

config.model: architecture, features (residual stream), hidden (LSTM state), num_layers, first_kernel,
  row_kernel (Row LSTM), head_features, dropout
"""

from __future__ import annotations

from gm_jax.data.dataset import Dataset
from gm_jax.models.pixelrnn import PixelRNN, PixelRNNConfig

ARCHITECTURES = ("row_lstm", "diagonal_bilstm")


def pixelrnn_config(config, dataset: Dataset) -> PixelRNNConfig:
  m = config.model
  return PixelRNNConfig(shape=tuple(dataset.spec.shape), num_levels=dataset.spec.num_levels,
                        architecture=m.architecture, features=m.features, hidden=m.hidden,
                        num_layers=m.num_layers, first_kernel=m.first_kernel, row_kernel=m.row_kernel,
                        head_features=m.head_features, dropout=m.dropout,
                        compute_dtype=config.train.compute_dtype)


def build_model(config, dataset: Dataset) -> PixelRNN:
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
