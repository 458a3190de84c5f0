r"""WGAN-GP with the seed's DCGAN networks on scikit-learn digits: lambda = 10, n_critic = 5, Adam 1e-4
with betas (0, 0.9) (Gulrajani et al. 2017); the critic uses LayerNorm instead of BatchNorm (seed 004:
no BatchNorm in a WGAN-GP critic) and has no sigmoid.

Command:
  python experiments/main.py --config=experiments/configs/digits_wgan_gp.py \
      --workdir=/tmp/gm_jax/digits_wgan_gp
Hardware: 2-core CPU, no accelerator.
Our result: not yet measured (sample grids only).
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
