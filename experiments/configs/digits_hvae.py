r"""Hierarchical (Markovian) VAE with two Gaussian stochastic layers on scikit-learn digits (ELBO).

q(z1|x), p(x|z1): tanh MLPs 200-200, z1 has 32 dims; q(z2|z1), p(z1|z2): 100-100, z2 has 16 dims;
p(z2) = N(0, I). The KL of each layer is reported (kl1, kl2). p(x|z1) is a discretized logistic
over the 17 grey levels, so the reported likelihood is a true discrete one. Evaluated on the 300 test
digits with IWAE-5000 (nll_nats, bpd) and the ELBO (elbo_nll_nats).

Command:
  python experiments/main.py --config=experiments/configs/digits_hvae.py --workdir=/tmp/gm_jax/digits_hvae
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2, 58 s): test nll_nats 81.96 = 1.848 bits/dim (IWAE-5000, one key per
  sample; 1.847 when each chunk of samples shared a key), better than the one-layer VAE (83.47);
  -ELBO 89.20 nats (KL per layer: kl1 9.85, kl2 7.54).
Sample quality, FD-digits of 1,000 samples against the 300 test digits in the shipped digits
  classifier's features (experiments/digits_report.py): FD 130.7 (data floor 39.7), KID 220.2,
  precision 0.849, recall 0.960, density 0.577, coverage 0.967, IS 8.91
  (in the per-machine classifier of earlier sessions: FD 133.4, floor 46.9).
Paper: none on digits (scikit-learn's 8x8 digits have no published VAE likelihood); the comparison is
  the other digits rows of docs/BASELINES.md.
"""

import pathlib

from gm_jax.tasks import with_tiny_size
from gm_jax.train.defaults import load_config_file


@with_tiny_size
def get_config():
  """digits_vae.py (same data and schedule) with these changes."""
  config = load_config_file(pathlib.Path(__file__).with_name("digits_vae.py"))
  config.model.update(latent_dims=(32, 16), hidden=((200, 200), (100, 100)))
  return config
