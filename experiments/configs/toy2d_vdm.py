r"""VDM (Kingma et al. 2021) on a 2-D toy density: a variance-preserving process with a learned log-SNR
schedule (endpoints gamma_0 = -13.3, gamma_1 = 5 at initialization, learned;
`--config.process.learned=network`
adds VDM's monotone network for the interior), trained by the continuous-time ELBO with antithetic time
sampling; the prior, diffusion and reconstruction terms are logged separately. Continuous data, so
the reconstruction term is a Gaussian density decoder at t = 0. Same data and MLP as toy2d_ddpm.py.
The schedule's interior is trained by the ELBO's gradient (whose expectation does not depend on it);
VDM's variance-minimizing update of the interior is not implemented.

Command:
  python experiments/main.py --config=experiments/configs/toy2d_vdm.py --workdir=/tmp/gm_jax/toy2d_vdm
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2, ring; the network given the log-SNR scaled by the initial endpoints, and z_t added to
  its noise prediction, as VDM's code): test NLL -2.860 nats by the ODE, ELBO -2.813 (prior 0.015,
  diffusion 7.568, reconstruction -10.395; 16 log-SNR draws per point, from its own key); entropy floor
  -2.906; 114 s on a 2-core Intel Xeon. With the network given t (before): ODE -2.845, ELBO -2.812.
Paper: VDM reports no 2-D results; the floor is the entropy of the data distribution.
"""

import pathlib

from gm_jax.tasks import diffusion, with_tiny_size
from gm_jax.train.defaults import load_config_file


@with_tiny_size
def get_config():
  config = load_config_file(pathlib.Path(__file__).with_name("toy2d_ddpm.py"))
  diffusion.use_vdm(config, "endpoints", 100)
  return config
