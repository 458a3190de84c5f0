r"""WGAN-GP (Gulrajani et al. 2017) on a 2-D toy density, with the published hyperparameters:
gradient-penalty weight lambda = 10, n_critic = 5, Adam with learning rate 1e-4 and betas (0, 0.9) for
both networks; the critic has no normalization layers. Same data (`:ring` / `:grid`, PacGAN's), networks
and metrics as toy2d_gan.py.

Command:
  python experiments/main.py --config=experiments/configs/toy2d_wgan_gp.py:ring \
      --workdir=/tmp/gm_jax/toy2d_wgan_gp_ring
Hardware: 2-core CPU, no accelerator.
Our result (5 seeds, mean +- s.e.): grid, 50k steps: 24.2 +- 0.2 modes, 51.2 % high quality, reverse KL
  0.26; ring, 50k steps: 8.0 +- 0.0 modes, 90.7 % high quality, reverse KL 0.006. Measured with
  python -m benchmarks.gan_modes --config=experiments/configs/toy2d_wgan_gp.py:ring \
      --workdir=/tmp/gm_jax/gan_modes/wgan_gp_ring --num_steps=50000   (and :grid, with its own
      --workdir and --config.train.eval_every=10000, as docs/BASELINES.md lists)
Paper: WGAN-GP shows 2-D toy densities as pictures only; PacGAN's Table 1 is the mode-coverage
  reference for GANs.
"""

import pathlib

from gm_jax.tasks import gan, with_tiny_size
from gm_jax.train.defaults import load_config_file


@with_tiny_size
def get_config(arg: str | None = None):
  config = load_config_file(pathlib.Path(__file__).with_name("toy2d_gan.py"), arg)
  gan.use_wgan_gp(config)
  return config
