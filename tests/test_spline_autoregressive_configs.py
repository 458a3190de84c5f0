"""The spline, autoregressive-flow, IAF-posterior and PixelRNN configs train end to end in their tiny
sizes through the one trainer."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from gm_jax.train import loop
from tests.conftest import load_config


def _train(config, workdir):
  config.train.progress_bar = False
  return loop.train(config, str(workdir))


@pytest.mark.parametrize("name,distribution", [("toy2d_nsf", "ring"), ("toy2d_maf", "moons")])
def test_toy2d_config(name, distribution, tmp_path):
  config = load_config(name, "tiny")
  config.data.distribution = distribution
  summary = _train(config, tmp_path)
  assert summary["estimator"] == "exact" and np.isfinite(summary["nll_nats"]) and "entropy_nats" in summary


@pytest.mark.parametrize("name", ["digits_nsf", "digits_maf", "digits_pixelrnn"])
def test_digits_config(name, tmp_path):
  summary = _train(load_config(name, "tiny"), tmp_path)
  assert summary["estimator"] == ("exact" if name == "digits_pixelrnn" else "elbo")
  assert summary["bpd"] == pytest.approx(summary["nll_nats"] / (64 * np.log(2)))
  assert 0 < summary["bpd"] and "fd" in summary  # samples drawn and scored in the digits feature space


def test_digits_vae_iaf_config(tmp_path):
  summary = _train(load_config("digits_vae_iaf", "tiny"), tmp_path)
  assert summary["estimator"] == "iwae_20"
  assert summary["nll_nats"] <= summary["elbo_nll_nats"] + 0.05


@pytest.mark.parametrize("name,arg,pixels", [("nsf_cifar10", "tiny", 32 * 32 * 3),
                                             ("pixelrnn_cifar10", "row_lstm,tiny", 32 * 32 * 3),
                                             ("binarized_mnist_pixelrnn", "tiny", 28 * 28)])
def test_paper_config_tiny_under_mock_data(name, arg, pixels, tmp_path):
  with tfds.testing.mock_data(num_examples=8):
    summary = _train(load_config(name, arg), tmp_path)
  assert summary["bpd"] == pytest.approx(summary["nll_nats"] / (pixels * np.log(2)))
  assert summary["bpd"] > 0
