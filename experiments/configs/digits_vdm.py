r"""VDM (Kingma et al. 2021) on scikit-learn digits: learned log-SNR endpoints (initially gamma_0 = -13.3,
gamma_1 = 5), the continuous-time ELBO with antithetic times, VDM's categorical decoder over the 17
levels at t = 0; the same U-Net as digits_ddpm.py. Reported: the ELBO (nll_nats, bpd, estimator 'vlb')
with its prior / diffusion / reconstruction terms, and the probability-flow ODE likelihood.

Command:
  python experiments/main.py --config=experiments/configs/digits_vdm.py --workdir=/tmp/gm_jax/digits_vdm
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2, with digits_ddpm.py's U-Net before its GroupNorm fix: 32 groups, whose first-level
  blocks ignored the time; not yet re-measured with 8 groups; 13.6 min with evaluation on a quiet
  machine; re-measured after the evaluation fixes
  of docs/BASELINES.md, "Diffusion", the same trained network): test ELBO 165.44 nats = 3.729 bits/dim
  (prior 0.18, diffusion 165.26, reconstruction 0.00; 16 log-SNR draws per digit; was 3.709 with one
  noise draw shared by a batch); ODE 100.53 nats = 2.266 bits/dim (was 2.457 with dequantization bins
  misaligned with the trained levels).
Sample quality (ddim sampler, 100 NFE), FD-digits of 1,000 samples against the 300 test digits
  (experiments/digits_report.py): FD 84.0 (data floor 46.9), KID 101.7, precision 0.831,
  recall 0.983, density 0.549, coverage 0.990, IS 9.22.
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
