"""Diffusion configs: a bad sampler, loss or evaluation is refused before training (tests/test_configs.py
trains every config)."""

import pytest

from gm_jax import tasks
from tests.conftest import load_config


def _train(config, workdir):
  config.train.progress_bar = False
  return tasks.train(config, str(workdir))


@pytest.mark.parametrize("name,field,value,message", [
    ("toy2d_ddpm", "eval.sampler", "heun_sde", "unknown config.eval.sampler"),
    ("toy2d_ddpm", "objective.loss", "score", "unknown config.objective.loss"),
    ("toy2d_flow_matching", "eval.vlb", True,
     "eval.vlb needs a finite log-SNR at both ends.*set eval.vlb=False"),
    ("toy2d_flow_matching", "eval.sampler", "dpm_solver", "needs a finite log-SNR at t = 1"),
])
def test_bad_sampler_or_loss_is_rejected_before_training(name, field, value, message, tmp_path):
  config = load_config(name, "tiny")
  section, name = field.split(".")
  config[section][name] = value
  with pytest.raises(ValueError, match=message):
    _train(config, tmp_path)
  assert not (tmp_path / "checkpoints").exists()
