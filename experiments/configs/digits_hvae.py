r"""Hierarchical (Markovian) VAE with two Gaussian stochastic layers on scikit-learn digits (ELBO).

q(z1|x), p(x|z1): tanh MLPs 200-200, z1 has 32 dims; q(z2|z1), p(z1|z2): 100-100, z2 has 16 dims;
p(z2) = N(0, I). The KL of each layer is reported (kl1, kl2). p(x|z1) is a discretized logistic
over the 17 grey levels, so the reported likelihood is a true discrete one. Evaluated on the 300 test
digits with IWAE-5000 (nll_nats, bpd) and the ELBO (elbo_nll_nats).

Command:
  python experiments/main.py --config=experiments/configs/digits_hvae.py --workdir=/tmp/gm_jax/digits_hvae
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2, 58 s): test nll_nats 81.96 = 1.847 bits/dim (IWAE-5000), better than the
  one-layer VAE (83.46); -ELBO 89.20 nats (KL per layer: kl1 9.85, kl2 7.54).
Paper: none on digits (scikit-learn's 8x8 digits have no published VAE likelihood); the comparison is
  the other digits rows of docs/BASELINES.md.
"""

from gm_jax.tasks.vae import default_config


def get_config(arg: str | None = None):
  config = default_config()
  config.data.name = "digits"
  config.data.batch_size = 100
  config.model.latent_dims = (32, 16)
  config.model.hidden = ((200, 200), (100, 100))
  config.model.decoder = "discretized_logistic"
  config.objective.name = "elbo"
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
