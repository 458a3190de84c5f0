r"""The digits classifier: the feature network of FD-digits and of the class accuracy of samples.

Three 3x3 convolutions (32, 64 with stride 2, 64 channels), a 128-wide ReLU layer (the feature space of
the sample-quality metrics: FD-digits, KID, precision/recall/density/coverage) and a 10-way softmax
(the class of a sample; an Inception-Score-style number). Dropout 0.3, Adam 2e-3 with cosine decay,
batch 128, 2000 steps on the 1,497 training digits; accuracy on the 300 test digits.

The package ships the network this config trained (gm_jax/evaluation/weights/digits_classifier, made by
experiments/export_digits_classifier.py), so that FD-digits is one metric on every machine: training is
deterministic on one machine, but another CPU or other XLA options round differently and give another
network (whose data floor differs by about 2 %).

Command (trains this config, or reads its finished run, and exports the network):
  python experiments/export_digits_classifier.py --workdir=/tmp/gm_jax/digits_classifier --out=DIR
Hardware: 2-core CPU (AMD EPYC with AVX2), no accelerator.
Our result (jax 0.10.2, the shipped network): 98.7 % test accuracy; FD-digits data floor (1,000 training
  digits, a fixed random 1,000 of the training split, against the 300 test digits) 39.72 (47.81 with the
  first 1,000 training digits, the floor before a later session). docs/BASELINES.md, "Digits across families".
Paper: none; a feature network, required to reach >= 97% test accuracy.
"""

from gm_jax.tasks import with_tiny_size
from gm_jax.tasks.classifier import default_config


@with_tiny_size
def get_config():
  config = default_config()
  return config
