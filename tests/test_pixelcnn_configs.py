"""The PixelCNN task refuses data and settings it cannot model (tests/test_configs.py trains every config)."""

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
