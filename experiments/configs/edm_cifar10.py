r"""EDM (Karras et al. 2022) on CIFAR-10, unconditional, with the paper's training and sampling settings
("config F" of Table 2) on this project's DDPM U-Net.

EDM's noise levels 0.002 .. 80 (rho = 7), preconditioning with sigma_data = 0.5, log-normal training
levels (P_mean -1.2, P_std 1.2) and loss weighting; batch 512 for 200M images (390,625 steps), Adam 1e-3
(betas 0.9, 0.999, eps 1e-8) with a 10M-image linear warmup (19,531 steps), EMA with a 0.5M-image
half-life (decay 0.99929 per step at batch 512), dropout 0.13; the deterministic Heun sampler with 18
levels (35 NFE). Differences: the network is the DDPM U-Net (128 channels, multipliers (1, 2, 2, 2),
attention at 16x16, 35.7M parameters) rather than the paper's DDPM++ (56M parameters); no non-leaky
augmentation (the paper applies it with probability 0.12); no EMA ramp-up (a fixed decay here); the
loss is a mean over pixels where EDM sums them (only Adam's eps sees the difference).

Command:
  python experiments/main.py --config=experiments/configs/edm_cifar10.py --workdir=/tmp/gm_jax/edm_cifar10
Data, hardware and sample quality: the TFDS image protocol of docs/BASELINES.md (tfds cifar10;
  FID of 50,000 samples in the Inception space; accelerators; only `:tiny` has run on CPU).
Our result: not measured (no CIFAR-10 offline here).
Paper: unconditional CIFAR-10 FID 1.97 at 35 NFE (Table 2, config F, DDPM++ architecture).
"""

from gm_jax.tasks import diffusion, with_tiny_size
from gm_jax.tasks.diffusion import default_config
from gm_jax.train.defaults import use_fid_protocol


@with_tiny_size
def get_config():
  config = default_config()
  config.data.update(name="cifar10", batch_size=512)
  config.model.update(net="unet", channels=128, channel_mults=(1, 2, 2, 2), attention_resolutions=(16,),
                      dropout=0.13)
  diffusion.use_edm(config)
  config.optim.update(learning_rate=1e-3, warmup_steps=19_531, b1=0.9, b2=0.999, eps=1e-8)
  config.train.update(num_steps=390_625, ema_decay=0.99929, log_every=1000, sample_every=50_000,
                      checkpoint_every=10_000)
  config.eval.update(batch_size=500, vlb=False, ode_exact_trace=False)
  use_fid_protocol(config)
  return config
