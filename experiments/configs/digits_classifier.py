r"""The digits classifier: the feature network of FD-digits and of the class accuracy of samples.

Three 3x3 convolutions (32, 64 with stride 2, 64 channels), a 128-wide ReLU layer (the feature space of
the sample-quality metrics: FD-digits, KID, precision/recall/density/coverage) and a 10-way softmax
(the class of a sample; an Inception-Score-style number). Dropout 0.3, Adam 2e-3 with cosine decay,
batch 128, 2000 steps on the 1,497 training digits; accuracy on the 300 test digits.

The evaluation trains this config once by itself when a digits model is first evaluated and caches the
exported parameters in $GM_JAX_CACHE/digits_classifier (default ~/.cache/gm_jax/digits_classifier);
delete that folder to retrain. Training is deterministic: the same parameters on every run on a machine.

Command (the same run, by hand):
  python experiments/main.py --config=experiments/configs/digits_classifier.py \
      --workdir=/tmp/gm_jax/digits_classifier
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2): see docs/BASELINES.md.
Paper: none; a feature network, required to reach >= 97% test accuracy.
"""

from gm_jax.tasks import with_tiny_size
from gm_jax.tasks.classifier import default_config


@with_tiny_size
def get_config():
  config = default_config()
  return config
