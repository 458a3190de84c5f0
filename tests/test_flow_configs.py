"""Every flow config trains end to end in its tiny size through the one trainer."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from gm_jax import tasks
from tests.conftest import load_config


def _train(config, workdir):
  config.train.progress_bar = False
  return tasks.train(config, str(workdir))


@pytest.mark.parametrize("name,distribution", [("toy2d_realnvp", "ring"), ("toy2d_realnvp", "checkerboard"),
                                               ("toy2d_glow", "moons")])
def test_toy2d_flow_config(name, distribution, tmp_path):
  config = load_config(name, "tiny")
  config.data.distribution = distribution
  summary = _train(config, tmp_path)
  assert summary["estimator"] == "exact" and "bpd" not in summary
  assert np.isfinite(summary["nll_nats"]) and "entropy_nats" in summary
  assert (tmp_path / "samples" / "step_0000020.png").exists()


@pytest.mark.parametrize("name", ["digits_realnvp", "digits_glow"])
@pytest.mark.parametrize("dequantization", ["uniform", "variational"])
def test_digits_flow_config(name, dequantization, tmp_path):
  config = load_config(name, "tiny")
  config.objective.dequantization = dequantization
  summary = _train(config, tmp_path)
  assert summary["estimator"] == "elbo"
  assert summary["bpd"] == pytest.approx(summary["nll_nats"] / (64 * np.log(2)))
  # A discrete likelihood bound: never below 0 bits/dim, and at most log2(17) plus a margin early on.
  assert 0 < summary["bpd"]


@pytest.mark.parametrize("name", ["realnvp_cifar10", "glow_cifar10"])
def test_paper_config_tiny_under_mock_data(name, tmp_path):
  with tfds.testing.mock_data(num_examples=8):
    summary = _train(load_config(name, "tiny"), tmp_path)
  assert summary["bpd"] == pytest.approx(summary["nll_nats"] / (32 * 32 * 3 * np.log(2)))
  assert summary["bpd"] > 0
