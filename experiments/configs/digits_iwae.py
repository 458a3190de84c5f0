r"""IWAE: the single-layer VAE of digits_vae.py trained by the importance-weighted bound with K = 50.

q(z|x) and p(x|z) are tanh MLPs (100-100), z has 16 dimensions, and p(x|z) is a discretized logistic
over the 17 grey levels, so the reported likelihood is a true discrete one. Evaluated on the 300 test
digits with IWAE-5000 (nll_nats, bpd) and the ELBO (elbo_nll_nats).

Command:
  python experiments/main.py --config=experiments/configs/digits_iwae.py --workdir=/tmp/gm_jax/digits_iwae
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2, 133 s): test nll_nats 82.83 = 1.867 bits/dim (IWAE-5000), better than the
  same network trained by the ELBO (digits_vae.py, 83.46); its ELBO is looser (-ELBO 96.16), as the
  IWAE paper observes.
Paper: none on digits (scikit-learn's 8x8 digits have no published VAE likelihood); the comparison is
  the other digits rows of docs/BASELINES.md.
"""

from gm_jax.tasks.vae import default_config


def get_config(arg: str | None = None):
  config = default_config()
  config.data.name = "digits"
  config.data.batch_size = 100
  config.model.latent_dims = (16,)
  config.model.hidden = ((100, 100),)
  config.model.decoder = "discretized_logistic"
  config.objective.name = "iwae"
  config.objective.num_samples = 50
  config.optim.learning_rate = 1e-3
  config.train.num_steps = 3000
  config.train.log_every = 100
  config.train.eval_every = 1000
  config.train.sample_every = 1000
  config.train.checkpoint_every = 1000
  config.eval.batch_size = 100
  if arg == "tiny":
    config.train.num_steps = 20
    config.train.log_every = 10
    config.train.eval_every = 0
    config.train.sample_every = 0
    config.train.checkpoint_every = 20
    config.eval.iwae_samples = 20
    config.eval.iwae_chunk = 10
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; use ':tiny' or nothing")
  return config
