r"""Score SDE (Song et al. 2021) with the VP SDE (beta_min 0.1, beta_max 20) on a 2-D toy density:
denoising score matching (the network predicts the noise; `--config.objective.weighting=likelihood`
gives the likelihood weighting g(t)^2), predictor-corrector sampling (Euler-Maruyama + Langevin,
snr 0.16), and the exact probability-flow ODE likelihood. Same data and MLP as toy2d_ddpm.py.

Command:
  python experiments/main.py --config=experiments/configs/toy2d_vpsde.py --workdir=/tmp/gm_jax/toy2d_vpsde
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2, ring): test NLL -2.859 nats by the ODE, ELBO -2.679 (diffusion term sampled
  uniformly in log-SNR, 16 draws per point, each point's from its own key); entropy floor -2.906.
Paper: Song et al. report no 2-D likelihoods; the floor is the entropy of the data distribution.
"""

import pathlib

from gm_jax.tasks import with_tiny_size
from gm_jax.train.defaults import load_config_file


@with_tiny_size
def get_config():
  config = load_config_file(pathlib.Path(__file__).with_name("toy2d_ddpm.py"))
  config.process.name = "vp"
  config.objective.weighting = "eps"
  config.eval.update(sampler="pc", sampler_steps=500)
  return config
