"""Every VAE-family config trains end to end in its tiny size through the one trainer."""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

from gm_jax import tasks
from tests.conftest import load_config

OFFLINE = ["digits_vae", "digits_hvae", "digits_iwae", "digits_autoencoder", "toy2d_vae"]


def _train(config, workdir):
  config.train.progress_bar = False
  return tasks.train(config, str(workdir))


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_config_trains(name, tmp_path):
  summary = _train(load_config(name, "tiny"), tmp_path)
  assert summary["step"] == 20
  if name == "digits_autoencoder":
    assert summary["estimator"] is None and np.isfinite(summary["recon_nll_nats"])
    return
  assert summary["estimator"] == "iwae_20"
  # IWAE-K is a tighter bound than the ELBO (on average; 300 or 512 test examples).
  assert summary["nll_nats"] <= summary["elbo_nll_nats"] + 0.05
  if name.startswith("digits"):
    assert summary["bpd"] == pytest.approx(summary["nll_nats"] / (64 * np.log(2)))
    assert (tmp_path / "samples" / "reconstructions_step_0000020.png").exists()
    assert (tmp_path / "samples" / "interpolations_step_0000020.png").exists()
  else:
    assert "bpd" not in summary and "entropy_nats" in summary
  if name == "digits_hvae":
    test = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()][-1]
    assert test["kl"] == pytest.approx(test["kl1"] + test["kl2"], rel=1e-5)


@pytest.mark.parametrize("name,arg", [("binarized_mnist_vae", "tiny"),
                                      ("binarized_mnist_iwae", "layers=2,k=5,objective=iwae,tiny"),
                                      ("binarized_mnist_iwae", "layers=1,k=1,objective=vae,tiny")])
def test_paper_config_tiny_under_mock_data(name, arg, tmp_path):
  with tfds.testing.mock_data(num_examples=8):
    summary = _train(load_config(name, arg), tmp_path)
  assert summary["estimator"] == "iwae_10" and np.isfinite(summary["nll_nats"])
  assert summary["bpd"] == pytest.approx(summary["nll_nats"] / (784 * np.log(2)))


def test_paper_config_published_schedule():
  config = load_config("binarized_mnist_iwae", "layers=2,k=50,objective=iwae")
  assert config.train.num_steps == 3280 * 2500
  assert config.optim.boundaries[:3] == (2500, 4 * 2500, 13 * 2500)
  assert config.optim.scales[-1] == pytest.approx(10 ** (-1))
  assert config.model.latent_dims == (100, 50) and config.objective.num_samples == 50
  with pytest.raises(ValueError, match="unknown config argument"):
    load_config("binarized_mnist_iwae", "layer=2")


def test_bernoulli_on_grey_levels_needs_binarize(tmp_path):
  config = load_config("digits_vae", "tiny")
  config.model.decoder = "bernoulli"
  with pytest.raises(ValueError, match="data.binarize=True"):
    _train(config, tmp_path / "a")
  config.data.binarize = True
  summary = _train(config, tmp_path / "b")
  assert summary["bpd"] == pytest.approx(summary["nll_nats"] / (64 * np.log(2)))


@pytest.mark.parametrize("beta", [0.0, 1.0, 4.0])
def test_beta_weights_the_kl_in_the_loss(beta, tmp_path):
  config = load_config("digits_vae", "tiny")
  config.objective.beta = beta
  config.train.num_steps = 10
  _train(config, tmp_path)
  first = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
  assert first["loss"] == pytest.approx(-first["recon"] + beta * first["kl"], rel=1e-5)
