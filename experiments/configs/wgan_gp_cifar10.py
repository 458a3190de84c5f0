r"""WGAN-GP (Gulrajani et al. 2017) on CIFAR-10 with DCGAN-style networks.

The paper's Algorithm 1 defaults: lambda = 10, n_critic = 5, Adam with learning rate 1e-4 and betas
(0, 0.9), batch 64; the critic has no BatchNorm (layer normalization here, as the paper suggests) and
no sigmoid; 100k generator iterations, as the authors' CIFAR-10 ResNet script runs.
Differences: the paper's headline CIFAR-10 model is a ResNet (whose script also decays the learning rate
linearly to 0, from 2e-4); this config uses the seed's DCGAN networks at 32x32, so its numbers are not
comparable with that ResNet's. The authors' DCGAN-architecture CIFAR-10 script differs again: 128 base
features, 5x5 kernels, z of 128, no normalization in the critic, betas (0.5, 0.9), 200k iterations.

Command:
  python experiments/main.py --config=experiments/configs/wgan_gp_cifar10.py \
      --workdir=/tmp/gm_jax/wgan_gp_cifar10
Data, hardware and sample quality: the TFDS image protocol of docs/BASELINES.md (tfds cifar10;
  FID of 50,000 samples in the Inception space; accelerators; only `:tiny` has run on CPU).
Our result: not measured (no CIFAR-10 offline here).
Paper: Inception score 7.86 +- 0.07 for the ResNet model (unsupervised CIFAR-10).
Paper FID: none (the paper reports Inception scores).
"""

import pathlib

from gm_jax.tasks import gan, with_tiny_size
from gm_jax.train.defaults import load_config_file


@with_tiny_size
def get_config():
  config = load_config_file(pathlib.Path(__file__).with_name("dcgan_cifar10.py"))
  config.model.discriminator_norm = "layer"
  gan.use_wgan_gp(config)
  config.data.batch_size = 64
  config.train.num_steps = 100_000
  return config
