r"""Class-conditional flow matching with classifier-free guidance (Ho & Salimans 2021) on scikit-learn
digits: digits_flow_matching.py with the digit's label embedded into the U-Net's time embedding, the
label dropped (replaced by "none") for 10 % of the training examples so that one network is both the
conditional and the unconditional model, and samples guided with scale w:
(1 + w) velocity(x, t, label) - w velocity(x, t, none).

Reported on the 300 test digits: the ODE bound on log p(x | label) (nll_nats, bpd); of 1,000 samples,
100 per class, the digits classifier's accuracy at naming the class each was drawn for
(class_accuracy; class_accuracy_floor is its accuracy on the real floor digits, its own training digits:
100 %; 98.7 % on the test digits) and FD-digits; the sample grid has one row per class.

Command:
  python experiments/main.py --config=experiments/configs/digits_flow_matching_conditional.py \
      --workdir=/tmp/gm_jax/digits_flow_matching_conditional
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2, 15.0 min, the 2 cores partly shared): ODE bound on log p(x | label) 98.64 nats =
  2.224 bits/dim. Samples at w = 1 (this config): class accuracy 100.0 %, FD-digits 86.3 (data floor
  46.9), recall 0.730; at w = 0 (--mode=eval --config.eval.guidance=0): 98.3 %, FD 34.9, recall 0.927;
  at w = 3: 100.0 %, FD 181.0, recall 0.467 (docs/BASELINES.md, "Flow matching, EDM and
  classifier-free guidance").
Rerun in a later session, judged by the shipped digits classifier (data floor 39.7; docs/BASELINES.md,
  "Digits across families"): 98.64 nats = 2.223 bits/dim (ode), at w = 1 class accuracy 100.0 %,
  FD-digits 87.5. Again after the adaptive ODE solved each example on its own (a later session; 14 min on
  a 2-core Intel Xeon, the cores shared with light work): 98.59 nats = 2.2225 bits/dim, FD-digits 87.5, class
  accuracy 100.0 %: unchanged.
Paper: none on digits (Ho & Salimans report ImageNet 64x64 FID/IS against w).
"""

import pathlib

from gm_jax.tasks import conditioning, with_tiny_size
from gm_jax.train.defaults import load_config_file


@with_tiny_size
def get_config():
  config = load_config_file(pathlib.Path(__file__).with_name("digits_flow_matching.py"))
  conditioning.use_classes(config, 10)
  config.eval.guidance = 1.0
  return config
