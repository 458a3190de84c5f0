"""The PixelCNN configs train end to end in their tiny sizes and report the exact likelihood."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from gm_jax import data as data_lib
from gm_jax.data import markov
from gm_jax.tasks import pixelcnn
from gm_jax import tasks
from tests.conftest import load_config


def _train(config, workdir):
  config.train.progress_bar = False
  return tasks.train(config, str(workdir))


def test_digits_pixelcnn_tiny(tmp_path):
  summary = _train(load_config("digits_pixelcnn", "tiny"), tmp_path)
  assert summary["estimator"] == "exact"
  assert summary["bpd"] == pytest.approx(summary["nll_nats"] / (64 * np.log(2)))
  # An exact discrete likelihood: between 0 and a little above the uniform's log2(17) bits/dim.
  assert 0 < summary["bpd"] < np.log2(17) + 0.5
  assert (tmp_path / "samples" / "step_0000010.png").exists()


def test_pixelcnn_cifar10_tiny_under_mock_data(tmp_path):
  with tfds.testing.mock_data(num_examples=8):
    summary = _train(load_config("pixelcnn_cifar10", "tiny"), tmp_path)
  assert summary["bpd"] == pytest.approx(summary["nll_nats"] / (32 * 32 * 3 * np.log(2)))
  assert 0 < summary["bpd"] < 8.5


def test_pixelcnn_rejects_token_data():
  tokens = markov.load(vocab_size=4, num_tokens=1000, context=8, concentration=1.0, seed=0)
  with pytest.raises(ValueError, match="pixelcnn task needs integer-level images"):
    pixelcnn.build(load_config("digits_pixelcnn", "tiny"), tokens)


def test_pixelcnn_rejects_a_zero_sampling_temperature():
  config = load_config("digits_pixelcnn", "tiny")
  config.eval.sample_temperature = 0.0
  with pytest.raises(ValueError, match="sample_temperature must be > 0"):
    pixelcnn.build(config, data_lib.load_dataset(config.data))
