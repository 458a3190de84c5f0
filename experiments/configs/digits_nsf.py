r"""Neural spline flow (Durkan et al. 2019, RQ-NSF (C)) on scikit-learn digits (17 levels).

Glow's multi-scale architecture with rational-quadratic spline couplings in place of affine ones:
uniform dequantization y = (k + u) / 17, logit preprocessing (alpha 0.05); 2 levels, each: squeeze, 4
steps of ActNorm -> invertible 1x1 convolution (LU) -> spline coupling on half the channels (8 bins,
tails outside [-3, 3], conditioner a 3x3 conv ResNet with 32 features and one residual block), factor
out half. Reported: the dequantization bound on the 300 test digits (nll_nats, bits/dim; estimator
`elbo`), with the dequantization and logit Jacobians included.

Command:
  python experiments/main.py --config=experiments/configs/digits_nsf.py --workdir=/tmp/gm_jax/digits_nsf
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2, 416,352 parameters, 359 s on 2 shared cores): test nll_nats 89.79 = 2.024 bits/dim
  (uniform dequantization bound; RealNVP 2.046); FD-digits 121.0 (data floor 46.9), precision 0.84,
  recall 0.97. It overfits: training loss 74.5 nats at the end.
Rerun in a later session, judged by the shipped digits classifier (data floor 39.7; docs/BASELINES.md,
  "Digits across families"): 2.023 bits/dim (elbo), FD-digits 113.3.
Paper: none on digits; compare digits_realnvp.py (2.046 bits/dim with the same dequantization).
"""

from gm_jax.tasks import with_tiny_size
from gm_jax.tasks.flow import default_config


@with_tiny_size
def get_config():
  config = default_config()
  config.data.update(name="digits", batch_size=64)
  # conv conditioners: features, then one residual block
  config.model.update(architecture="nsf", hidden=(32, 32), num_levels=2, steps_per_level=4,
                      preprocess="logit")
  config.optim.update(schedule="cosine", warmup_steps=100, grad_clip_norm=100.0)
  config.train.update(num_steps=3000, eval_every=1000, sample_every=3000)
  config.eval.batch_size = 100
  return config
