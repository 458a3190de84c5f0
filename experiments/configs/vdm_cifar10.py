r"""VDM (Kingma et al. 2021) on CIFAR-10 with the published setting.

A variance-preserving process with a learned log-SNR schedule (linear, gamma from -13.3 to 5 at
initialization with learned endpoints: the authors' 'learnable_scalar' for CIFAR-10 without
augmentation), the continuous-time ELBO with antithetic times, VDM's categorical decoder at t = 0; a
U-Net without downsampling: 32 residual blocks of 128 channels down and up, one attention layer (in the
middle), dropout 0.1; AdamW 2e-4 (b2 0.99, weight decay 0.01 on weight matrices, 100 warmup steps, no
gradient clipping), batch 128, EMA 0.9999, no augmentation; ancestral samples in 1000 steps (DDIM with
eta 1). Each path's blocks are one nn.scan (model.scan_blocks): the train step compiled in 13.0 s
instead of 50.8 s on one machine when the schedule was a monotone network, and compiles in 7.9 s with
its learned endpoints on another (benchmarks.compile_times; docs/BASELINES.md, "Speed").
The network reads the log-SNR scaled by the initial endpoints and predicts the noise as z_t plus its
output, as the authors' code does.
Differences: no Fourier-feature inputs; the paper trains for 10M steps, set here to 2M.

Command:
  python experiments/main.py --config=experiments/configs/vdm_cifar10.py --workdir=/tmp/gm_jax/vdm_cifar10
Data, hardware and sample quality: the TFDS image protocol of docs/BASELINES.md (tfds cifar10;
  FID of 50,000 samples in the Inception space; accelerators; only `:tiny` has run on CPU).
Our result: not measured (no CIFAR-10 offline here).
Paper: 2.65 bits/dim on the CIFAR-10 test set (Table 1, with Fourier features).
"""

import pathlib

from gm_jax.tasks import diffusion, with_tiny_size
from gm_jax.train.defaults import load_config_file


@with_tiny_size
def get_config():
  config = load_config_file(pathlib.Path(__file__).with_name("ddpm_cifar10.py"))
  diffusion.use_vdm(config, "endpoints", 1000)
  config.data.random_flip = False
  config.optim.update(name="adamw", b2=0.99, weight_decay=0.01, decay_matrices_only=True, warmup_steps=100,
                      grad_clip_norm=0.0)
  config.eval.ddim_eta = 1.0  # ancestral in 1000 steps, as the authors sample
  config.model.update(channel_mults=(1,), num_res_blocks=32, attention_resolutions=(), scan_blocks=True)
  config.train.num_steps = 2_000_000
  return config
