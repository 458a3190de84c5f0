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
