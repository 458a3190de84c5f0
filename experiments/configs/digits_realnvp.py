r"""RealNVP on scikit-learn digits (17 levels), with RealNVP's multi-scale architecture.

Uniform dequantization y = (k + u) / 17, logit preprocessing (alpha 0.05); level 1 (8x8x1): 3 affine
checkerboard couplings, squeeze, 3 channel couplings, factor out half; level 2 (4x4x2): 3 checkerboard
couplings. Conditioners: 3x3 conv ResNets with 32 features and one residual block. Reported: the
dequantization bound on the 300 test digits as nll_nats and bits/dim (estimator `elbo`), with the
dequantization and logit Jacobians included.

Command:
  python experiments/main.py --config=experiments/configs/digits_realnvp.py --workdir=/tmp/gm_jax/digits_realnvp
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2, 128 s): test nll_nats 90.76 = 2.046 bits/dim (uniform dequantization bound);
  with --config.objective.dequantization=variational: 87.68 = 1.977 bits/dim (142 s).
Paper: none on digits; compare the digits rows of docs/BASELINES.md (VAE family, PixelCNN).
"""

from gm_jax.tasks.flow import default_config


def get_config(arg: str | None = None):
  config = default_config()
  config.data.name = "digits"
  config.data.batch_size = 64
  config.model.architecture = "realnvp"
  config.model.hidden = (32, 32)  # conv features, then one residual block
  config.model.num_levels = 2
  config.model.steps_per_level = 3
  config.model.preprocess = "logit"
  config.model.logit_alpha = 0.05
  config.objective.dequantization = "uniform"
  config.optim.learning_rate = 1e-3
  config.optim.schedule = "cosine"
  config.optim.warmup_steps = 100
  config.optim.grad_clip_norm = 100.0
  config.train.num_steps = 3000
  config.train.log_every = 100
  config.train.eval_every = 1000
  config.train.sample_every = 2000
  config.train.checkpoint_every = 1000
  config.eval.batch_size = 100
  if arg == "tiny":
    config.model.hidden = (8, 8)
    config.model.steps_per_level = 1
    config.optim.warmup_steps = 2
    config.train.num_steps = 10
    config.train.log_every = 5
    config.train.eval_every = 0
    config.train.sample_every = 0
    config.train.checkpoint_every = 10
    config.train.num_samples = 16
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; use ':tiny' or nothing")
  return config
