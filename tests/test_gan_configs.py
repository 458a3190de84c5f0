"""The GAN configs train end to end in their tiny size: n_critic D updates and one G update per step."""

import json

import jax
import numpy as np
import pytest

from gm_jax import tasks
from tests.conftest import load_config


def _train(config, workdir):
  config.train.progress_bar = False
  return tasks.train(config, str(workdir))


@pytest.mark.parametrize("loss,data", [("minimax", "ring"), ("non_saturating", "grid"), ("hinge", "ring")])
def test_toy2d_gan(loss, data, tmp_path):
  config = load_config("toy2d_gan", f"{data},tiny")
  config.objective.loss = loss
  summary = _train(config, tmp_path)
  assert summary["estimator"] is None and np.isfinite(summary["d_loss"])
  assert 0 <= summary["modes_captured"] <= (8 if data == "ring" else 25)
  assert 0 <= summary["high_quality_fraction"] <= 1 and summary["reverse_kl"] >= 0
  assert (tmp_path / "samples" / "step_0000020.png").exists()


def test_toy2d_gan_uses_pacgans_data():
  ring, grid = load_config("toy2d_gan", "ring"), load_config("toy2d_gan", "grid")
  assert ring.data.geometry.to_dict() == {"num_modes": 8, "radius": 1.0, "std": 0.01}
  assert grid.data.geometry.to_dict() == {"side": 5, "spacing": 2.0, "std": 0.05}
  assert ring.data.num_train == 100_000 and ring.data.num_test == 2500 and ring.data.batch_size == 100
  with pytest.raises(ValueError, match="use ring or grid"):
    load_config("toy2d_gan", "ring,grid")


def test_toy2d_wgan_gp_runs_five_critic_updates_per_step(tmp_path):
  config = load_config("toy2d_wgan_gp", "tiny")
  _train(config, tmp_path)
  first = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
  assert "discriminator/gradient_penalty" in first and "generator/loss" in first
  assert config.objective.n_critic == 5 and config.optim_d.b1 == 0.0 and config.optim_d.b2 == 0.9


def test_wgan_weight_clipping_through_the_trainer(tmp_path):
  config = load_config("toy2d_gan", "tiny")
  config.objective.loss = "wgan"
  config.objective.n_critic = 5
  config.optim_d.name = "rmsprop"
  config.optim_d.learning_rate = 5e-5
  config.optim_d.weight_clip = 0.01
  _train(config, tmp_path)
  exp = tasks.experiment(config, tmp_path)
  state, _ = exp.restore_latest()
  exp.checkpointer.close()
  leaves = jax.tree.leaves(state.networks["discriminator"].params)
  assert max(float(np.max(np.abs(leaf))) for leaf in leaves) <= 0.01 + 1e-7


@pytest.mark.parametrize("name", ["digits_dcgan", "digits_wgan_gp"])
def test_digits_gan_configs(name, tmp_path):
  summary = _train(load_config(name, "tiny"), tmp_path)
  assert np.isfinite(summary["d_loss"]) and (tmp_path / "samples" / "step_0000010.png").exists()


def test_wgan_gp_refuses_a_batchnorm_critic(tmp_path):
  config = load_config("digits_wgan_gp", "tiny")
  config.model.discriminator_norm = "batch"
  with pytest.raises(ValueError, match="must not use BatchNorm"):
    _train(config, tmp_path)


@pytest.mark.parametrize("name", ["dcgan_celeba64", "dcgan_cifar10", "wgan_gp_cifar10"])
def test_paper_config_tiny_under_mock_data(name, tmp_path):
  import tensorflow_datasets as tfds

  with tfds.testing.mock_data(num_examples=8):
    config = load_config(name, "tiny")
    summary = _train(config, tmp_path)
  assert np.isfinite(summary["d_loss"])
  size = 64 if name == "dcgan_celeba64" else 32
  from PIL import Image

  assert Image.open(tmp_path / "samples" / "step_0000002.png").size[0] > size  # a grid of samples
