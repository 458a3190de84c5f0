r"""VDM (Kingma et al. 2021) on scikit-learn digits: learned log-SNR endpoints (initially gamma_0 = -13.3,
gamma_1 = 5), the continuous-time ELBO with antithetic times, VDM's categorical decoder over the 17
levels at t = 0; the same U-Net as digits_ddpm.py, given the log-SNR scaled by the initial endpoints in
place of t and predicting the noise as z_t plus its output (VDM's parameterization). Reported: the ELBO
(nll_nats, bpd, estimator 'vlb') with its prior / diffusion / reconstruction terms, and the
probability-flow ODE likelihood.

Command:
  python experiments/main.py --config=experiments/configs/digits_vdm.py --workdir=/tmp/gm_jax/digits_vdm
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2; 7.9 min with evaluation on a 2-core Intel Xeon): test ELBO 159.34 nats = 3.592
  bits/dim (prior 0.15, diffusion 159.18, reconstruction 0.00); ODE 118.13 nats = 2.663 bits/dim; FD-digits
  63.9 (data floor 39.7), KID 53.1, precision 0.853, recall 0.967, density 0.619, coverage 0.990, IS 9.26.
The numbers below are of the network given t in place of the scaled log-SNR, without z_t added:
With digits_ddpm.py's U-Net as it is now (9.3 min of training on a quiet 2-core CPU):
  test ELBO 157.95 nats = 3.561 bits/dim (prior 0.17, diffusion 157.78, reconstruction 0.00; 16 log-SNR
  draws per digit); ODE 108.53 nats = 2.447 bits/dim.
Sample quality (ddim sampler, 100 NFE), FD-digits of 1,000 samples against the 300 test digits in the
  shipped digits classifier's features (experiments/digits_report.py): FD 69.2 (data floor 39.7),
  KID 67.1, precision 0.865, recall 0.973, density 0.622, coverage 0.993, IS 9.20.
Retrained in a later session, with each example's adaptive ODE solved on its own (a 2-core Intel Xeon, the
  cores shared with light work): ELBO 157.95 nats = 3.560 bits/dim, ODE 108.51 nats = 2.446 bits/dim
  (0.02 nats below the batch-level solve's 108.53), FD-digits 68.9.
Earlier, with the U-Net before its GroupNorm fix (32 groups, whose first-level blocks ignored the time):
  ELBO 3.729 and ODE 2.266 bits/dim, FD 84.0 in the per-machine classifier of that session (floor 46.9).
Paper: none on digits; compare the digits rows of docs/BASELINES.md.
"""

import pathlib

from gm_jax.tasks import diffusion, with_tiny_size
from gm_jax.train.defaults import load_config_file


@with_tiny_size
def get_config():
  config = load_config_file(pathlib.Path(__file__).with_name("digits_ddpm.py"))
  diffusion.use_vdm(config, "endpoints", 100)
  return config
