"""The trainer's config fields with their defaults; every experiment config starts from `base_config`."""

from __future__ import annotations

import importlib.util
import pathlib

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.task = ""

  config.data = ml_collections.ConfigDict()
  config.data.name = ""
  config.data.batch_size = 128
  config.data.seed = 0  # shuffling order; toy2d also draws its fixed train/test samples with it

  config.model = ml_collections.ConfigDict()

  config.optim = ml_collections.ConfigDict()
  config.optim.name = "adam"
  config.optim.learning_rate = 1e-3
  config.optim.b1 = 0.9
  config.optim.b2 = 0.999
  config.optim.eps = 1e-8
  config.optim.weight_decay = 0.0
  config.optim.schedule = "constant"  # constant | cosine | linear
  config.optim.warmup_steps = 0
  config.optim.decay_steps = 0  # 0: the run's num_steps
  config.optim.end_lr_ratio = 0.0
  config.optim.grad_clip_norm = 0.0  # 0: no clipping

  config.train = ml_collections.ConfigDict()
  config.train.num_steps = 1000
  config.train.log_every = 100
  config.train.eval_every = 0  # 0: only at the end
  config.train.sample_every = 0  # 0: only at the end
  config.train.num_samples = 64
  config.train.checkpoint_every = 1000
  config.train.keep_checkpoints = 3
  config.train.async_checkpoints = True
  config.train.ema_decay = 0.0  # 0: no EMA parameters
  config.train.progress_bar = True

  config.eval = ml_collections.ConfigDict()
  config.eval.batch_size = 1000
  return config


def load_config_file(path: str | pathlib.Path, arg: str | None = None) -> ml_collections.ConfigDict:
  """`get_config(arg)` of a config file, as `--config=path:arg` would give it (unlocked)."""
  path = pathlib.Path(path)
  spec = importlib.util.spec_from_file_location(f"gm_jax_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)
