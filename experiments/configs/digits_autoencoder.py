r"""Deterministic autoencoder baseline (seed 004): the nets of digits_vae.py trained without the KL.

The encoder's mean z = mu(x) (16 dims) is decoded by the same discretized-logistic p(x|z). Evaluated on
the 300 test digits by recon_nll_nats = -log p(x | z = mean of q(z|x)). It has no likelihood: z is not tied to a
prior, so decoding z ~ N(0, I) (the sample grid) gives poor digits, while its reconstructions are
sharper than the VAE's. That contrast is the point of this baseline.

Command:
  python experiments/main.py --config=experiments/configs/digits_autoencoder.py --workdir=/tmp/gm_jax/digits_autoencoder
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2, 12 s): test recon_nll_nats 64.09, against the VAE's E_q[-log p(x|z)] of
  71.58; no likelihood, and its prior samples are noise (docs/BASELINES.md).
Paper: none; compare with digits_vae.py in docs/BASELINES.md.
"""

from gm_jax.tasks.vae import default_config


def get_config(arg: str | None = None):
  config = default_config()
  config.data.name = "digits"
  config.data.batch_size = 100
  config.model.latent_dims = (16,)
  config.model.hidden = ((100, 100),)
  config.model.decoder = "discretized_logistic"
  config.objective.name = "autoencoder"
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
