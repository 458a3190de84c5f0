"""The PixelCNN task refuses data and settings it cannot model (tests/test_configs.py trains every config)."""

import numpy as np
import pytest

from gm_jax import data as data_lib
from gm_jax.data import markov
from gm_jax.tasks import pixelcnn
from tests.conftest import load_config


def test_pixelcnn_rejects_token_data():
  tokens = markov.load(vocab_size=4, num_tokens=1000, context=8, concentration=1.0, seed=0)
  with pytest.raises(ValueError, match="pixelcnn task needs integer-level images"):
    pixelcnn.build(load_config("digits_pixelcnn", "tiny"), tokens)


def test_pixelcnn_rejects_a_zero_sampling_temperature():
  config = load_config("digits_pixelcnn", "tiny")
  config.eval.sample_temperature = 0.0
  with pytest.raises(ValueError, match="sample_temperature must be > 0"):
    pixelcnn.build(config, data_lib.load_dataset(config.data))


@pytest.mark.parametrize("arg,architecture", [("row_lstm", "row_lstm"), ("", "diagonal_bilstm"),
                                              ("diagonal_bilstm,tiny", "diagonal_bilstm")])
def test_pixelrnn_cifar10_takes_one_architecture(arg, architecture):
  assert load_config("pixelrnn_cifar10", arg or None).model.architecture == architecture
  # Both named: the first used to win without a word.
  with pytest.raises(ValueError, match=r"config arguments row_lstm,diagonal_bilstm name two architectures"):
    load_config("pixelrnn_cifar10", "row_lstm,diagonal_bilstm")


@pytest.mark.parametrize("name,fields,message", [
    ("digits_pixelrnn", {"hidden": 8}, r"model.hidden=8 must be a multiple of the data's 3 channels"),
    ("digits_pixelcnn", {"head_features": 10}, r"model.head_features=10 must be a multiple of the data's 3"),
    ("digits_pixelrnn", {"row_kernel": 4}, None)])  # the Diagonal BiLSTM has no row kernel to be odd
def test_feature_counts_split_into_the_colour_channels(tmp_path, name, fields, message):
  np.save(tmp_path / "rgb.npy", np.random.default_rng(0).integers(0, 256, (20, 4, 4, 3), dtype=np.uint8))
  config = load_config(name, "tiny")
  config.data.update(name="npz", path=str(tmp_path / "rgb.npy"))
  config.model.update(features=6, head_features=6, **({"hidden": 6} if "hidden" in config.model else {}))
  config.model.update(fields)
  dataset = data_lib.load_dataset(config.data)
  if message is None:
    pixelcnn.build(config, dataset)
  else:
    with pytest.raises(ValueError, match=message):
      pixelcnn.build(config, dataset)
