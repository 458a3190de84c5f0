r"""Glow on scikit-learn digits (17 levels): multi-scale steps of ActNorm, invertible 1x1 conv, coupling.

Uniform dequantization y = (k + u) / 17, shifted to [-0.5, 0.5); level 1: squeeze 8x8x1 -> 4x4x4,
4 steps (ActNorm, invertible 1x1 conv with LU, affine channel coupling), factor out half; level 2:
squeeze 4x4x2 -> 2x2x8, 4 steps. Conditioners: 3x3 conv ResNets, 32 features, one block. Reported: the
dequantization bound on the 300 test digits as nll_nats and bits/dim (estimator `elbo`), the
dequantization and shift Jacobians included.

Command:
  python experiments/main.py --config=experiments/configs/digits_glow.py --workdir=/tmp/gm_jax/digits_glow
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2, 87 s): test nll_nats 108.72 = 2.451 bits/dim (uniform dequantization bound);
  it overfits the 1,497 training images (train 89.6 nats). Rerun in a later session, on another CPU,
  for the digits report: 108.42 = 2.444 bits/dim.
Sample quality, FD-digits of 1,000 samples against the 300 test digits in the shipped digits
  classifier's features (experiments/digits_report.py): FD 176.0 (data floor 39.7), KID 349.2,
  precision 0.900, recall 0.960, density 0.605, coverage 0.950, IS 8.54
  (in the per-machine classifier of earlier sessions: FD 179.8, floor 46.9).
Paper: none on digits; compare the digits rows of docs/BASELINES.md (VAE family, PixelCNN).
"""

import pathlib

from gm_jax.tasks import with_tiny_size
from gm_jax.train.defaults import load_config_file


@with_tiny_size
def get_config():
  """digits_realnvp.py (same data, dequantization, optimizer and schedule) with Glow."""
  config = load_config_file(pathlib.Path(__file__).with_name("digits_realnvp.py"))
  config.model.update(architecture="glow", preprocess="shift")
  config.model.steps_per_level = 4
  return config
