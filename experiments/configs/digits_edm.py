r"""EDM (Karras et al. 2022) on scikit-learn digits: digits_ddpm.py's U-Net, optimizer, schedule, steps and
EMA with EDM's design choices: noise levels 0.002 .. 80 warped by rho = 7 (process 'karras'), the
preconditioned network (c_skip, c_out, c_in, c_noise with sigma_data = 0.5) read as an x0 prediction, the
log-normal training noise levels (P_mean -1.2, P_std 1.2) with their loss weighting, and the
deterministic Heun sampler in 18 levels (35 NFE).

Reported on the 300 test digits: the ELBO (nll_nats, bpd) and the probability-flow ODE bound (ode_bpd;
uniform dequantization, Hutchinson trace), both on the discrete data; FD-digits of 1,000 samples.

Command:
  python experiments/main.py --config=experiments/configs/digits_edm.py --workdir=/tmp/gm_jax/digits_edm
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2, 10.9 min with evaluation on a quiet machine): FD-digits of 1,000 samples 45.1 at
  35 NFE (data floor 46.9), KID 4.4, precision 0.915, recall 0.947, density 0.824, coverage 1.000, IS
  9.67; ODE bound 102.87 nats = 2.319 bits/dim; the ELBO is loose, 216.49 nats = 4.880 bits/dim (EDM's
  log-normal weighting spends little training at the small noise levels the bound needs). FD against NFE
  in docs/BASELINES.md, "Flow matching, EDM and classifier-free guidance".
Rerun in a later session, judged by the shipped digits classifier (data floor 39.7; docs/BASELINES.md,
  "Digits across families"): 4.880 bits/dim (vlb), ODE bound 2.316 bits/dim, FD-digits 45.5.
The numbers above embed 1000 c_noise (the U-Net's time scale). With c_noise itself, as EDM's code (the
  config now; a 2-core Intel Xeon, 7.7 min with evaluation): ELBO 213.61 nats = 4.815 bits/dim, ODE bound
  105.40 nats = 2.376 bits/dim, FD-digits 44.2 (floor 39.7), KID 1.0, precision 0.928, recall 0.963,
  density 0.851, coverage 1.000, IS 9.65.
Paper: none on digits; CIFAR-10 in edm_cifar10.py.
"""

import pathlib

from gm_jax.tasks import diffusion, with_tiny_size
from gm_jax.train.defaults import load_config_file


@with_tiny_size
def get_config():
  config = load_config_file(pathlib.Path(__file__).with_name("digits_ddpm.py"))
  diffusion.use_edm(config)
  return config
