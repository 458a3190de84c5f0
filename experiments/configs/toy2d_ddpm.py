r"""DDPM (Ho et al. 2020) on a 2-D toy density: T = 1000 linear betas (1e-4 .. 0.02), an MLP that predicts
the noise, L_simple, EMA 0.999 parameters for evaluation and sampling.

Reported on the test points: the exact probability-flow ODE log-density (nll_nats, estimator 'ode',
exact trace), the chain's full 1000-term VLB with a Gaussian decoder (vlb_nll_nats), and the
distribution's entropy (the floor any model's NLL sits above). `benchmarks/diffusion_samplers.py`
compares the samplers by NFE on the trained model.

Command:
  python experiments/main.py --config=experiments/configs/toy2d_ddpm.py --workdir=/tmp/gm_jax/toy2d_ddpm
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2, ring): test NLL -2.800 nats by the ODE (exact trace), VLB -2.581; entropy
  floor -2.906. Samplers by NFE: docs/BASELINES.md.
Paper: DDPM reports no 2-D results; the floor is the entropy of the data distribution.
"""

from gm_jax.tasks.diffusion import default_config


def get_config(arg: str | None = None):
  config = default_config()
  config.data.name = "toy2d"
  config.data.distribution = "ring"
  config.data.geometry = {}  # the distribution's defaults (ring: radius 2, std 0.02)
  config.data.num_train = 100_000
  config.data.num_test = 5_000
  config.data.batch_size = 512
  config.process.name = "ddpm_linear"
  config.process.num_steps = 1000
  config.model.net = "mlp"
  config.model.hidden = (256, 256, 256)
  config.model.prediction = "eps"
  config.objective.loss = "denoising"
  config.objective.weighting = "eps"
  config.optim.learning_rate = 1e-3
  config.optim.schedule = "cosine"
  config.optim.warmup_steps = 200
  config.optim.end_lr_ratio = 0.01
  config.train.num_steps = 10_000
  config.train.ema_decay = 0.999
  config.train.log_every = 500
  config.train.eval_every = 0
  config.train.sample_every = 5000
  config.train.num_samples = 4000
  config.train.checkpoint_every = 5000
  config.eval.batch_size = 5000
  config.eval.sampler = "ddpm"
  if arg == "tiny":
    config.data.num_train = 2048
    config.data.num_test = 256
    config.data.batch_size = 128
    config.process.num_steps = 50
    config.model.hidden = (16, 16)
    config.model.time_dim = 8
    config.optim.warmup_steps = 2
    config.train.num_steps = 10
    config.train.log_every = 5
    config.train.sample_every = 0
    config.train.num_samples = 64
    config.train.checkpoint_every = 10
    config.eval.batch_size = 256
    config.eval.ode_solver = "heun"  # fixed steps: the tiny run only checks the plumbing
    config.eval.ode_steps = 4
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; use ':tiny' or nothing")
  return config
