r"""Conditional Gated PixelCNN (van den Oord et al. 2016) on scikit-learn digits: digits_pixelcnn.py with
the digit's label as the paper's conditioning vector: a learned projection of its one-hot vector added
to both stacks' gate pre-activations in every block, so log p(x | label) stays an exact sum over the
sub-pixels. Reported on the 300 test digits: -log p(x | label) (nll_nats, bpd; exact); of 1,000
samples, 100 per class, the digits classifier's accuracy at naming the class each was drawn for
(class_accuracy) and FD-digits; the sample grid has one row per class.

Command:
  python experiments/main.py --config=experiments/configs/digits_pixelcnn_conditional.py \
      --workdir=/tmp/gm_jax/digits_pixelcnn_conditional
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2, 5.8 min): test -log p(x | label) 74.73 nats = 1.685 bits/dim (exact; the
  unconditional digits_pixelcnn: 77.93 = 1.757). Samples (64 network evaluations each): class accuracy
  97.2 % (the classifier's training digits: 100 %), FD-digits 38.5 (data floor 46.9; the
  unconditional digits_pixelcnn: 68.2), precision 0.934, recall 0.943.
Rerun in a later session, judged by the shipped digits classifier (data floor 39.7; docs/BASELINES.md,
  "Digits across families"): 74.64 nats = 1.683 bits/dim (exact), class accuracy 97.4 %,
  FD-digits 39.4.
Paper: none on digits (van den Oord et al. condition on ImageNet classes and report samples only).
"""

import pathlib

from gm_jax.tasks import conditioning, with_tiny_size
from gm_jax.train.defaults import load_config_file


@with_tiny_size
def get_config():
  config = load_config_file(pathlib.Path(__file__).with_name("digits_pixelcnn.py"))
  conditioning.use_classes(config, 10)
  return config
