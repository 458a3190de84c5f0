r"""GAN on a 2-D toy density with MLP generator and discriminator; the loss is selectable.

--config.objective.loss=minimax (saturating generator loss, as in Goodfellow et al. 2014's analysis),
non_saturating (the default, their practical recommendation), hinge, or wgan (then also set
--config.optim_d.name=rmsprop --config.optim_d.learning_rate=5e-5 --config.optim_d.weight_clip=0.01
--config.objective.n_critic=5 as published). toy2d_wgan_gp.py is WGAN-GP.
Data: --config.data.distribution=ring|grid|... (default: ring of 8, radius 2, std 0.02).

Command:
  python experiments/main.py --config=experiments/configs/toy2d_gan.py --workdir=/tmp/gm_jax/toy2d_gan
Hardware: 2-core CPU, no accelerator.
Our result: not yet measured (the mode-coverage metrics are still to come); the run writes sample
  scatter plots to samples/.
Paper: PacGAN (Lin et al. 2018), Table 1: a GAN captures 6.3 of 8 ring modes and 17.3 of 25 grid modes.
"""

from gm_jax.tasks.gan import default_config


def get_config(arg: str | None = None):
  config = default_config()
  config.data.name = "toy2d"
  config.data.distribution = "ring"
  config.data.geometry = {}
  config.data.num_train = 100_000
  config.data.num_test = 10_000
  config.data.batch_size = 256
  config.objective.loss = "non_saturating"
  config.objective.n_critic = 1
  config.optim.name = "adam"
  config.optim.learning_rate = 1e-4
  config.optim.b1 = 0.5
  config.optim_d.name = "adam"
  config.optim_d.learning_rate = 1e-4
  config.optim_d.b1 = 0.5
  config.train.num_steps = 20_000
  config.train.log_every = 500
  config.train.eval_every = 5000
  config.train.sample_every = 5000
  config.train.num_samples = 2500
  config.train.checkpoint_every = 5000
  config.eval.batch_size = 2000
  if arg == "tiny":
    config.data.num_train = 2048
    config.data.num_test = 512
    config.data.batch_size = 64
    config.model.generator_hidden = (16,)
    config.model.discriminator_hidden = (16,)
    config.train.num_steps = 20
    config.train.log_every = 10
    config.train.eval_every = 0
    config.train.sample_every = 0
    config.train.num_samples = 128
    config.train.checkpoint_every = 20
    config.eval.batch_size = 256
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; use ':tiny' or nothing")
  return config
