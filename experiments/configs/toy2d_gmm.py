r"""Gaussian mixture on the ring of 8 Gaussians, trained by exact maximum likelihood.

The trainer's sanity baseline: a 16-component full-covariance mixture can represent the ring exactly,
so its test NLL must reach the data's entropy floor.

Command:
  python experiments/main.py --config=experiments/configs/toy2d_gmm.py --workdir=/tmp/toy2d_gmm
Hardware: 2-core CPU, no accelerator.
Our result (2026-11, jax 0.10.2): test nll_nats -2.9123 (exact) after 3000 steps in 11 s wall time;
  entropy floor -2.9063 +- 0.0010; the true density's NLL on the same test split -2.9132, so the
  estimated KL(p || model) is 0.0009 nats.
Paper: none; the floor is the ring's true entropy, log 8 + log(2 pi e sigma^2) for separated modes
  (estimated by Monte Carlo with 1M samples).
`:tiny` (gm_jax.tasks.density.tiny) is the launcher tests' run of 40 steps.
"""

from gm_jax.tasks import with_tiny_size
from gm_jax.tasks.density import default_config


@with_tiny_size
def get_config():
  config = default_config()

  config.data.update(name="toy2d", distribution="ring",
                     geometry={"num_modes": 8, "radius": 2.0, "std": 0.02}, num_train=100_000,
                     num_test=100_000, batch_size=512)

  config.model.num_components = 16

  config.optim.update(learning_rate=2e-2, schedule="cosine", warmup_steps=50, end_lr_ratio=0.01)

  config.train.update(num_steps=3000, eval_every=1000, sample_every=1000, num_samples=2000,
                      checkpoint_every=500)
  config.eval.batch_size = 10_000
  return config
