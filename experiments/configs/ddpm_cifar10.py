r"""DDPM (Ho et al. 2020) on CIFAR-10 with the published setting.

T = 1000 linear betas 1e-4 .. 0.02; the U-Net with 128 channels, multipliers (1, 2, 2, 2), two residual
blocks per resolution, self-attention at 16x16, dropout 0.1 (35.7M parameters); noise prediction with
L_simple; Adam 2e-4 with 5000 warmup steps, gradient clipping 1.0, batch 128, EMA 0.9999, 800k steps;
ancestral sampling; random horizontal flips (data.random_flip).

Command:
  python experiments/main.py --config=experiments/configs/ddpm_cifar10.py --workdir=/tmp/gm_jax/ddpm_cifar10
Data, hardware and sample quality: the TFDS image protocol of docs/BASELINES.md (tfds cifar10;
  FID of 50,000 samples in the Inception space; accelerators; only `:tiny` has run on CPU).
Our result: not measured (no CIFAR-10 offline here).
Paper: FID 3.17 and NLL <= 3.75 bits/dim for L_simple; NLL <= 3.70 bits/dim when trained on the full
  VLB (Table 1).
"""

from gm_jax.tasks import with_tiny_size
from gm_jax.tasks.diffusion import default_config
from gm_jax.train.defaults import use_fid_protocol


@with_tiny_size
def get_config():
  config = default_config()
  config.data.update(name="cifar10", random_flip=True)
  config.model.update(net="unet", channels=128, channel_mults=(1, 2, 2, 2), attention_resolutions=(16,))
  config.optim.update(learning_rate=2e-4, warmup_steps=5000, grad_clip_norm=1.0)
  config.train.update(num_steps=800_000, ema_decay=0.9999, log_every=1000, sample_every=50_000,
                      checkpoint_every=10_000)
  config.eval.batch_size = 500
  # The DDPM paper reports the VLB; for the ODE likelihood add --config.eval.ode=True and
  # --config.eval.ode_exact_trace=False (Hutchinson's trace: the exact one costs 3,072 passes per step).
  config.eval.ode = False
  use_fid_protocol(config)
  return config
