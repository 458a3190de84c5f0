r"""Masked autoregressive flow (Papamakarios et al. 2017) on scikit-learn digits (17 levels).

Uniform dequantization y = (k + u) / 17, logit preprocessing (alpha 0.05), then 5 steps of ActNorm and
a MADE layer (ReLU 256-256) over the 64 pixels in raster order, reversed from step to step, with affine
transforms (--config.model.transform=spline for RQ-NSF (AR)'s splines). Density in one MADE pass per
step; sampling takes 64. Reported: the dequantization bound on the 300 test digits (nll_nats,
bits/dim; estimator `elbo`), with the dequantization and logit Jacobians included.

Command:
  python experiments/main.py --config=experiments/configs/digits_maf.py --workdir=/tmp/gm_jax/digits_maf
Hardware: 2-core CPU, no accelerator.
Our result: not measured to the end (the run was stopped after step 2,800). Its evaluations
  at steps 1,000 and 2,000 gave 97.99 and 106.54 nats (2.209 and 2.402 bits/dim): it overfits (training
  loss 75.3 at step 2,800), so fewer steps or a smaller MADE would do better here.
Paper: none on digits; compare digits_realnvp.py (2.046 bits/dim with the same dequantization).
"""

from gm_jax.tasks import with_tiny_size
from gm_jax.tasks.flow import default_config


@with_tiny_size
def get_config():
  config = default_config()
  config.data.update(name="digits", batch_size=64)
  config.model.update(architecture="maf", hidden=(256, 256), steps_per_level=5, preprocess="logit")
  config.optim.update(schedule="cosine", warmup_steps=100, grad_clip_norm=100.0)
  # 1,000 steps: it overfits the 1,497 training digits after that (test NLL rises by step 2,000)
  config.train.update(num_steps=1000, eval_every=500, sample_every=1000)
  config.eval.batch_size = 100
  return config
