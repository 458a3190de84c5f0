r"""Deterministic autoencoder baseline (seed 004): the nets of digits_vae.py trained without the KL.

The encoder's mean z = mu(x) (16 dims) is decoded by the same discretized-logistic p(x|z). Evaluated on
the 300 test digits by recon_nll_nats = -log p(x | z = mean of q(z|x)). It has no likelihood: z is not tied to
a prior, so decoding z ~ N(0, I) (the sample grid) gives poor digits, while its reconstructions are
sharper than the VAE's. That contrast is the point of this baseline.

Command:
  python experiments/main.py --config=experiments/configs/digits_autoencoder.py \
      --workdir=/tmp/gm_jax/digits_autoencoder
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2, 12 s): test recon_nll_nats 64.09, against the VAE's E_q[-log p(x|z)] of
  71.58; no likelihood, and its prior samples are noise (docs/BASELINES.md).
Sample quality, FD-digits of 1,000 samples against the 300 test digits in the shipped digits
  classifier's features (experiments/digits_report.py): FD 416.7 (data floor 39.7), KID 535.6,
  precision 0.426, recall 0.907, density 0.132, coverage 0.300, IS 6.90
  (in the per-machine classifier of earlier sessions: FD 434.7, floor 46.9).
Paper: none; compare with digits_vae.py in docs/BASELINES.md.
"""

import pathlib

from gm_jax.tasks import with_tiny_size
from gm_jax.train.defaults import load_config_file


@with_tiny_size
def get_config():
  """digits_vae.py (same data and schedule) with these changes."""
  config = load_config_file(pathlib.Path(__file__).with_name("digits_vae.py"))
  config.objective.name = "autoencoder"
  return config
