r"""VDM (Kingma et al. 2021) on CIFAR-10 with the published setting.

A variance-preserving process with a learned log-SNR schedule (gamma from -13.3 to 5 at
initialization, monotone network), the continuous-time ELBO with antithetic times, VDM's categorical
decoder at t = 0; a U-Net without downsampling: 32 residual blocks of 128 channels down and up, one
attention layer (in the middle), dropout 0.1; Adam 2e-4, batch 128, EMA 0.9999. Each path's blocks are
one nn.scan (model.scan_blocks): the train step compiles in 13.0 s instead of 50.8 s on one machine
(benchmarks.compile_times).
Differences: no Fourier-feature inputs, and the schedule's interior is trained by the ELBO gradient
rather than VDM's variance-minimizing objective; the paper trains for 10M steps, set here to 2M.

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
  diffusion.use_vdm(config, "network", 1000)
  config.model.update(channel_mults=(1,), num_res_blocks=32, attention_resolutions=(), scan_blocks=True)
  config.train.num_steps = 2_000_000
  return config
