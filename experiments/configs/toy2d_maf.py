r"""Masked autoregressive flow (Papamakarios et al. 2017) on a 2-D toy density: steps of ActNorm and a
MADE layer whose order reverses from step to step, with rational-quadratic spline transforms (8 bins,
tails outside [-3, 3]; the autoregressive RQ-NSF of Durkan et al. 2019); MAF's affine transforms with
--config.model.transform=affine.

Exact maximum likelihood; the test NLL is reported beside the distribution's entropy floor.
Same data and optimizer as toy2d_nsf.py; 2,000 steps.
Choose the density with --config.data.distribution=ring|grid|checkerboard|moons|spirals.

Command:
  python experiments/main.py --config=experiments/configs/toy2d_maf.py --workdir=/tmp/gm_jax/toy2d_maf_ring
  (and --config.data.distribution=checkerboard / moons with their own workdirs)
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2, 2,000 steps, 182,672 parameters): test nll_nats (exact) ring -2.889 (floor -2.906),
  checkerboard 2.125 (floor 2.079), moons 1.013 (floor 1.008; 62 s); 165-167 s on 2 shared cores. Affine
  transforms (139,344 parameters): ring -1.310 (113 s), the affine flows' limit (docs/BASELINES.md).
Paper: none (Papamakarios et al. 2017 report UCI and image data); the floor is the true entropy.
"""

import pathlib

from gm_jax.tasks import with_tiny_size
from gm_jax.train.defaults import load_config_file


@with_tiny_size
def get_config():
  config = load_config_file(pathlib.Path(__file__).with_name("toy2d_nsf.py"))
  config.model.architecture = "maf"
  config.model.transform = "spline"  # affine (MAF proper) with --config.model.transform=affine
  config.model.coupling_scale_init = 1.0  # affine transforms only
  config.train.update(num_steps=2000, sample_every=2000)  # within 0.05 nats of every floor by then
  return config
