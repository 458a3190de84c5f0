r"""Conditional DCGAN on scikit-learn digits: digits_dcgan.py with the generator given the digit's label
(its one-hot vector appended to z) and a projection discriminator (Miyato & Koyama 2018): the logit gains
the inner product of a learned class vector with the features its last linear layer reads. Fakes take
the labels of the real microbatch they are judged beside. Of 1,000 samples, 100 per class: the digits
classifier's accuracy at naming the class each was drawn for (class_accuracy) and FD-digits; the sample
grid has one row per class.

Command:
  python experiments/main.py --config=experiments/configs/digits_dcgan_conditional.py \
      --workdir=/tmp/gm_jax/digits_dcgan_conditional
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2, 32 s): no likelihood (a GAN). Samples: class accuracy 99.0 % (judged by that
  session's digits classifier, 98.3 % accurate on held-out digits), FD-digits 51.3 (data floor 46.9;
  the unconditional digits_dcgan beside it: 143.9), KID 5.0, precision 0.916, recall 0.847, coverage
  0.983.
Rerun in a later session, judged by the shipped digits classifier (100 % on its training digits, 98.7 %
  on held-out digits; data floor 39.7; docs/BASELINES.md, "Digits across families"): class accuracy
  98.5 %, FD-digits 51.7.
Paper: none on digits (Miyato & Koyama report ImageNet 128x128 Inception scores).
"""

import pathlib

from gm_jax.tasks import conditioning, with_tiny_size
from gm_jax.train.defaults import load_config_file


@with_tiny_size
def get_config():
  config = load_config_file(pathlib.Path(__file__).with_name("digits_dcgan.py"))
  conditioning.use_classes(config, 10)
  return config
