r"""Gaussian mixture on the ring of 8 Gaussians, trained by exact maximum likelihood.

The trainer's sanity baseline: a 16-component full-covariance mixture can represent the ring exactly,
so its test NLL must reach the data's entropy floor.

Command:
  python experiments/main.py --config=experiments/configs/toy2d_gmm.py --workdir=/tmp/toy2d_gmm
Hardware: 2-core CPU, no accelerator.
Our result (2026-11, jax 0.10.2): test nll_nats -2.9123 (exact) after 3000 steps in 11 s wall time;
  entropy floor -2.9063 +- 0.0010; the true density's NLL on the same test split -2.9132, so the
  estimated KL(p || model) is 0.0009 nats.
Paper: none; the floor is the ring's true entropy, log 8 + log(2 pi e sigma^2) for separated modes
  (estimated by Monte Carlo with 1M samples).
`:tiny` shrinks steps and data for smoke tests.
"""

from gm_jax.train.defaults import base_config


def get_config(arg: str | None = None):
  config = base_config()
  config.task = "gmm"

  config.data.name = "toy2d"
  config.data.distribution = "ring"
  config.data.geometry = {"num_modes": 8, "radius": 2.0, "std": 0.02}
  config.data.num_train = 100_000
  config.data.num_test = 100_000
  config.data.batch_size = 512

  config.model.num_components = 16

  config.optim.name = "adam"
  config.optim.learning_rate = 2e-2
  config.optim.schedule = "cosine"
  config.optim.warmup_steps = 50
  config.optim.end_lr_ratio = 0.01

  config.train.num_steps = 3000
  config.train.log_every = 100
  config.train.eval_every = 1000
  config.train.sample_every = 1000
  config.train.num_samples = 2000
  config.train.checkpoint_every = 500
  config.eval.batch_size = 10_000

  if arg == "tiny":
    config.data.num_train = 4096
    config.data.num_test = 4096
    config.data.batch_size = 64
    config.train.num_steps = 40
    config.train.log_every = 10
    config.train.eval_every = 20
    config.train.sample_every = 20
    config.train.num_samples = 256
    config.train.checkpoint_every = 10
    config.eval.batch_size = 1024
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; use ':tiny' or nothing")
  return config
