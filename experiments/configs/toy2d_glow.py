r"""Glow on a 2-D toy density: steps of ActNorm, an invertible linear map (LU) and an affine coupling.

Exact maximum likelihood; the test NLL is reported beside the distribution's entropy floor.
Same data and schedule as toy2d_realnvp.py; learning rate 2e-3, log-scale bound 1.
Choose the density with --config.data.distribution=ring|grid|checkerboard|moons|spirals.

Command:
  python experiments/main.py --config=experiments/configs/toy2d_glow.py --workdir=/tmp/gm_jax/toy2d_glow_ring
  (and --config.data.distribution=checkerboard / moons with their own workdirs)
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2, 6,000 steps): with 16 steps and learning rate 2e-3 (this config): ring -2.524
  (floor -2.906, 436 s on shared cores), checkerboard 2.176 (floor 2.079, 98 s), moons 0.896 (floor
  0.898, 110 s).
  With the earlier 8 steps and 1e-3: ring -2.416 (46 s), checkerboard 2.250 (floor 2.079, 48 s), moons
  0.897 (floor 0.898, 86 s). Why the ring stays above its floor: docs/BASELINES.md.
Paper: none (Kingma & Dhariwal 2018 report images only); the floor is the true entropy.
"""

import pathlib

from gm_jax.tasks import with_tiny_size
from gm_jax.train.defaults import load_config_file


@with_tiny_size
def get_config():
  config = load_config_file(pathlib.Path(__file__).with_name("toy2d_realnvp.py"))
  config.model.architecture = "glow"
  config.model.coupling_scale_init = 1.0  # a bound of 3 slowed Glow down on the ring (ActNorm rescales)
  config.optim.learning_rate = 2e-3
  return config
