r"""GAN on PacGAN's 2-D ring or grid with MLP generator and discriminator; the loss is selectable.

Data, as PacGAN (Lin et al. 2018) sets it: `:ring` (default) = 8 Gaussians with std 0.01 on the unit
circle; `:grid` = 25 Gaussians with std 0.05 at {-4, -2, 0, 2, 4}^2; 100,000 training points each.
Metrics on 2,500 generated points (one per test point): modes captured, the fraction of high-quality
points (within 3 std of a mode), and the reverse KL of the modes' histogram to uniform
(gm_jax/evaluation/mode_coverage.py). Training as PacGAN's GAN: z in R^2, batch 100, Adam 1e-4 with
beta1 0.8, 400 epochs (400k steps). Differences: the discriminator uses LeakyReLU layers (3 x 200), not
maxout, and the generator has 3 ReLU layers of 400.
--config.objective.loss=minimax (saturating), non_saturating (default), hinge, or wgan (with
--config.optim.name=rmsprop --config.optim.learning_rate=5e-5 --config.optim_d.name=rmsprop
--config.optim_d.learning_rate=5e-5 --config.optim_d.weight_clip=0.01 --config.objective.n_critic=5:
both networks on RMSProp, as published). toy2d_wgan_gp.py is WGAN-GP.

Command (one run of the config's 400k steps):
  python experiments/main.py --config=experiments/configs/toy2d_gan.py:ring \
      --workdir=/tmp/gm_jax/toy2d_gan_ring
Command of the result below (5 seeds of 50k steps; :grid likewise):
  python -m benchmarks.gan_modes --config=experiments/configs/toy2d_gan.py:ring \
      --workdir=/tmp/gm_jax/gan_modes/ns_ring --num_steps=50000
Hardware: 2-core CPU, no accelerator.
Our result (5 seeds, 50k steps, mean +- s.e.): ring 4.8 +- 0.7 modes, 89.5 % high quality, reverse KL
  0.94; grid 24.4 +- 0.4 modes, 58.4 %, 0.20 (docs/BASELINES.md, benchmarks/gan_modes.py).
Paper: PacGAN Table 1, GAN: 6.3 of 8 ring modes, 17.3 of 25 grid modes.
"""

from gm_jax.tasks import with_tiny_size
from gm_jax.tasks.gan import default_config


PACGAN_DATA = {
    "ring": {"num_modes": 8, "radius": 1.0, "std": 0.01},
    "grid": {"side": 5, "spacing": 2.0, "std": 0.05},
}


@with_tiny_size
def get_config(arg: str | None = None):
  options = set(filter(None, (arg or "").split(",")))
  unknown = options - {"ring", "grid"}
  if unknown or {"ring", "grid"} <= options:
    raise ValueError(f"unknown config argument {arg!r}; use ring or grid (and/or tiny)")
  distribution = "grid" if "grid" in options else "ring"
  config = default_config()
  config.data.update(name="toy2d", distribution=distribution, geometry=PACGAN_DATA[distribution],
                     num_train=100_000, num_test=2500, batch_size=100)
  config.model.update(generator_hidden=(400, 400, 400), discriminator_hidden=(200, 200, 200))
  for optim in (config.optim, config.optim_d):
    optim.name = "adam"
    optim.learning_rate = 1e-4
    optim.b1 = 0.8
  config.train.update(num_steps=400_000, log_every=1000, eval_every=50_000, sample_every=50_000,
                      num_samples=2500, checkpoint_every=10_000)
  config.eval.batch_size = 500
  return config
