r"""DDPM (Ho et al. 2020) on CIFAR-10 with the published setting.

T = 1000 linear betas 1e-4 .. 0.02; the U-Net with 128 channels, multipliers (1, 2, 2, 2), two residual
blocks per resolution, self-attention at 16x16, dropout 0.1 (35.7M parameters); noise prediction with
L_simple; Adam 2e-4 with 5000 warmup steps, gradient clipping 1.0, batch 128, EMA 0.9999, 800k steps;
ancestral sampling. Differences: no random horizontal flips (the data pipeline has no augmentation).

Command:
  python experiments/main.py --config=experiments/configs/ddpm_cifar10.py --workdir=/tmp/gm_jax/ddpm_cifar10
Data: tfds cifar10 (prepare it once: `tfds build cifar10 --file_format=array_record`).
Hardware: needs accelerators; on a 2-core CPU only `:tiny` has been run (in the test suite, under
  tfds.testing.mock_data).
Sample quality: FID (and KID, P/R/D/C, IS) in the FID Inception space, 50,000 samples against the
  training split, test split as the data floor; pass the converted weights with
  --config.eval.inception_weights=FILE (gm_jax/evaluation/inception_weights.py says how to make it).
Our result: not measured (no CIFAR-10 offline here).
Paper: FID 3.17 and NLL <= 3.75 bits/dim for L_simple; NLL <= 3.70 bits/dim when trained on the full
  VLB (Table 2).
"""

from gm_jax.tasks.diffusion import default_config
from gm_jax.train.defaults import use_fid_protocol


def get_config(arg: str | None = None):
  config = default_config()
  config.data.name = "cifar10"
  config.data.batch_size = 128
  config.process.name = "ddpm_linear"
  config.process.num_steps = 1000
  config.model.net = "unet"
  config.model.prediction = "eps"
  config.model.channels = 128
  config.model.channel_mults = (1, 2, 2, 2)
  config.model.num_res_blocks = 2
  config.model.attention_resolutions = (16,)
  config.model.dropout = 0.1
  config.objective.loss = "denoising"
  config.objective.weighting = "eps"
  config.optim.name = "adam"
  config.optim.learning_rate = 2e-4
  config.optim.warmup_steps = 5000
  config.optim.grad_clip_norm = 1.0
  config.train.num_steps = 800_000
  config.train.ema_decay = 0.9999
  config.train.log_every = 1000
  config.train.eval_every = 0
  config.train.sample_every = 50_000
  config.train.checkpoint_every = 10_000
  config.eval.batch_size = 500
  config.eval.ode = False  # the DDPM paper reports the VLB; enable for the ODE likelihood
  config.eval.ode_exact_trace = False
  config.eval.sampler = "ddpm"
  use_fid_protocol(config, tiny=arg == "tiny")
  if arg == "tiny":
    config.data.batch_size = 4
    config.process.num_steps = 10
    config.model.channels = 8
    config.model.channel_mults = (1, 2)
    config.model.num_res_blocks = 1
    config.optim.warmup_steps = 1
    config.train.num_steps = 2
    config.train.log_every = 1
    config.train.sample_every = 0
    config.train.checkpoint_every = 2
    config.train.num_samples = 2
    config.eval.batch_size = 4
    config.eval.ode = True
    config.eval.ode_solver = "heun"  # two fixed steps: the tiny run only checks the plumbing
    config.eval.ode_steps = 2
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; use ':tiny' or nothing")
  return config
