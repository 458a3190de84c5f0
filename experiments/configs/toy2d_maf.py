r"""Masked autoregressive flow (Papamakarios et al. 2017) on a 2-D toy density: steps of ActNorm and a
MADE layer whose order reverses from step to step; affine transforms by default, rational-quadratic
splines with --config.model.transform=spline.

Exact maximum likelihood; the test NLL is reported beside the distribution's entropy floor.
Same data, optimizer, schedule and `:tiny` size as toy2d_realnvp.py.
Choose the density with --config.data.distribution=ring|grid|checkerboard|moons|spirals.

Command:
  python experiments/main.py --config=experiments/configs/toy2d_maf.py --workdir=/tmp/gm_jax/toy2d_maf_ring
  (and --config.data.distribution=checkerboard / moons with their own workdirs)
Hardware: 2-core CPU, no accelerator.
Our result: not measured.
Paper: none (Papamakarios et al. 2017 report UCI and image data); the floor is the true entropy.
"""

import pathlib

from gm_jax.train.defaults import load_config_file


def get_config(arg: str | None = None):
  config = load_config_file(pathlib.Path(__file__).with_name("toy2d_realnvp.py"), arg)
  config.model.architecture = "maf"
  config.model.transform = "affine"
  config.model.num_bins = 8
  config.model.tail_bound = 3.0
  return config
