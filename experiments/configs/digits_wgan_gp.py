r"""WGAN-GP with the seed's DCGAN networks on scikit-learn digits: lambda = 10, n_critic = 5, Adam 1e-4
with betas (0, 0.9) (Gulrajani et al. 2017); the critic has no sigmoid and no BatchNorm (seed 004: no
BatchNorm in a WGAN-GP critic). Its `discriminator_norm` is LayerNorm, but on 8 x 8 digits the critic has
no layer it would normalize (one strided convolution, then the logit), so it has no effect here.

Command:
  python experiments/main.py --config=experiments/configs/digits_wgan_gp.py \
      --workdir=/tmp/gm_jax/digits_wgan_gp
Hardware: 2-core CPU, no accelerator.
Our result (the digits report, docs/BASELINES.md: python experiments/digits_report.py; 2.3 min on a
  2-core AMD EPYC): no likelihood (a GAN); FD-digits of 1,000 samples against the 300 test digits 167.8
  (data floor 39.7), KID 191.8, precision 0.706, recall 0.973, density 0.352, coverage 0.777, IS 8.31.
Paper: none on digits.
"""

import pathlib

from gm_jax.tasks import gan, with_tiny_size
from gm_jax.train.defaults import load_config_file


@with_tiny_size
def get_config():
  config = load_config_file(pathlib.Path(__file__).with_name("digits_dcgan.py"))
  config.model.discriminator_norm = "layer"
  gan.use_wgan_gp(config)
  return config
