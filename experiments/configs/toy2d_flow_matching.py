r"""Flow matching (Lipman et al. 2023) / rectified flow (Liu et al. 2023) on a 2-D toy density: the linear
path x_t = (1 - t) x_0 + t eps, an MLP that predicts the velocity, the conditional flow-matching loss at
t ~ U[0, 1], EMA 0.999 parameters; samples by the ODE (20 fixed Tsit5 steps, 121 NFE), and the exact
log-density by the ODE (adaptive Tsit5, exact trace) from t = 0, where the path starts at the data itself.
Same data, MLP and schedule
as toy2d_ddpm.py. `--config.process.name=cosine_interpolant` gives the variance-preserving path.

Command:
  python experiments/main.py --config=experiments/configs/toy2d_flow_matching.py \
      --workdir=/tmp/gm_jax/toy2d_flow_matching_DIST --config.data.distribution=DIST
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2): test NLL by the ODE -2.869 nats on the ring (entropy floor -2.906, gap 0.037),
  1.041 on two moons (floor 1.008, gap 0.033), 2.278 on the checkerboard (floor 2.079, gap 0.199: its
  sharp-edged squares); samples' FD at or near the data floor's in all three (the moons: 0.0028 against
  0.0024; docs/BASELINES.md, "Flow matching, EDM and classifier-free guidance"). With
  --config.objective.coupling=ot (minibatch OT) the NLL is
  -2.776 / 2.233 on the ring / checkerboard (0.916 on the moons before their geometry was corrected to
  scikit-learn's) and one Euler step samples about as well as 20 do; reflow of these runs
  (experiments/reflow_pairs.py, then --config.data.reflow_pairs=PAIRS --config.objective.coupling=pairs)
  does the same from 100,000 pairs (the same section).
Paper: Lipman et al. and Liu et al. report no 2-D likelihoods; the floor is the entropy of the data
  distribution.
"""

import pathlib

from gm_jax.tasks import diffusion, with_tiny_size
from gm_jax.train.defaults import load_config_file


@with_tiny_size
def get_config():
  config = load_config_file(pathlib.Path(__file__).with_name("toy2d_ddpm.py"))
  diffusion.use_flow_matching(config)
  return config
