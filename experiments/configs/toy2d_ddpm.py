r"""DDPM (Ho et al. 2020) on a 2-D toy density: T = 1000 linear betas (1e-4 .. 0.02), an MLP that predicts
the noise, L_simple, EMA 0.999 parameters for evaluation and sampling.

Reported on the test points: the exact probability-flow ODE log-density (nll_nats, estimator 'ode',
exact trace), the chain's full 1000-term VLB with a Gaussian decoder (vlb_nll_nats), and the
distribution's entropy (the floor any model's NLL sits above). `benchmarks/diffusion_samplers.py`
compares the samplers by NFE on the trained model.

Command:
  python experiments/main.py --config=experiments/configs/toy2d_ddpm.py --workdir=/tmp/gm_jax/toy2d_ddpm
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2, ring): test NLL -2.802 nats by the ODE (exact trace), VLB -2.604 (each test
  point's noise from its own key); entropy floor -2.906. Samplers by NFE: docs/BASELINES.md.
Paper: DDPM reports no 2-D results; the floor is the entropy of the data distribution.
"""

from gm_jax.tasks import with_tiny_size
from gm_jax.tasks.diffusion import default_config


@with_tiny_size
def get_config():
  config = default_config()
  config.data.update(name="toy2d", distribution="ring")
  config.data.geometry = {}  # the distribution's defaults (ring: radius 2, std 0.02)
  config.data.update(num_train=100_000, num_test=5_000, batch_size=512)
  config.optim.update(schedule="cosine", warmup_steps=200, end_lr_ratio=0.01)
  config.train.update(num_steps=10_000, ema_decay=0.999, log_every=500, sample_every=5000, num_samples=4000,
                      checkpoint_every=5000)
  config.eval.batch_size = 5000
  return config
