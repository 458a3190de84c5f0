"""Every diffusion config trains end to end in its tiny size through the one trainer."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from gm_jax import tasks
from tests.conftest import load_config


def _train(config, workdir):
  config.train.progress_bar = False
  return tasks.train(config, str(workdir))


@pytest.mark.parametrize("name", ["toy2d_ddpm", "toy2d_vdm", "toy2d_vpsde"])
def test_toy2d_diffusion_config(name, tmp_path):
  summary = _train(load_config(name, "tiny"), tmp_path)
  assert summary["estimator"] == "ode" and "bpd" not in summary
  assert np.isfinite(summary["nll_nats"]) and np.isfinite(summary["vlb_nll_nats"])
  assert "entropy_nats" in summary
  assert (tmp_path / "samples" / "step_0000010.png").exists()
  if name == "toy2d_vdm":
    assert {"vlb_prior", "vlb_diffusion", "vlb_reconstruction"} <= set(summary)


@pytest.mark.parametrize("name", ["digits_ddpm", "digits_vdm"])
def test_digits_diffusion_config(name, tmp_path):
  summary = _train(load_config(name, "tiny"), tmp_path)
  assert summary["estimator"] == "vlb"
  assert summary["bpd"] == pytest.approx(summary["nll_nats"] / (64 * np.log(2)))
  # Bounds on a discrete likelihood with the dequantization/bin Jacobians included: never negative.
  assert summary["bpd"] > 0 and summary["ode_bpd"] > 0


@pytest.mark.parametrize("name", ["ddpm_cifar10", "vdm_cifar10", "score_sde_vp_cifar10"])
def test_paper_config_tiny_under_mock_data(name, tmp_path):
  with tfds.testing.mock_data(num_examples=4):
    summary = _train(load_config(name, "tiny"), tmp_path)
  assert summary["bpd"] == pytest.approx(summary["nll_nats"] / (32 * 32 * 3 * np.log(2)))
  assert summary["bpd"] > 0 and summary["ode_bpd"] > 0


@pytest.mark.parametrize("field,value,message", [("eval.sampler", "heun_sde", "unknown config.eval.sampler"),
                                                 ("objective.loss", "score", "unknown config.objective.loss")])
def test_bad_sampler_or_loss_is_rejected_before_training(field, value, message, tmp_path):
  config = load_config("toy2d_ddpm", "tiny")
  section, name = field.split(".")
  config[section][name] = value
  with pytest.raises(ValueError, match=message):
    _train(config, tmp_path)
  assert not (tmp_path / "checkpoints").exists()
