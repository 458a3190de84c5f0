"""Diffusion configs: a bad sampler or loss is refused before training (tests/test_configs.py trains every
config)."""

import pytest

from gm_jax import tasks
from tests.conftest import load_config


def _train(config, workdir):
  config.train.progress_bar = False
  return tasks.train(config, str(workdir))


@pytest.mark.parametrize("field,value,message", [("eval.sampler", "heun_sde", "unknown config.eval.sampler"),
                                                 ("objective.loss", "score", "unknown config.objective.loss")])
def test_bad_sampler_or_loss_is_rejected_before_training(field, value, message, tmp_path):
  config = load_config("toy2d_ddpm", "tiny")
  section, name = field.split(".")
  config[section][name] = value
  with pytest.raises(ValueError, match=message):
    _train(config, tmp_path)
  assert not (tmp_path / "checkpoints").exists()
