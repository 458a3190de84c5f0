r"""The seed's DCGAN, sized for scikit-learn digits (8x8, one channel), non-saturating loss.

Generator: Linear(z 100 -> 4x4x64) -> BN -> ReLU -> 5x5 stride-2 transposed conv -> tanh; discriminator:
4x4 stride-2 conv (64) + LeakyReLU -> 4x4 valid conv to a logit (gm_jax.models.dcgan with image size 8,
features 64). Adam 2e-4, beta1 0.5, as DCGAN. Images are scaled to [-1, 1]; samples are mapped back to
the 17 grey levels.

Command:
  python experiments/main.py --config=experiments/configs/digits_dcgan.py --workdir=/tmp/gm_jax/digits_dcgan
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2; the digits report's run, a 2-core AVX2 AMD EPYC, otherwise idle cores): no
  likelihood (a GAN). Sample quality, FD-digits of 1,000 samples against the 300 test digits in the
  shipped digits classifier's features (experiments/digits_report.py): FD 148.4 (data floor 39.7),
  KID 150.8, precision 0.737, recall 0.910, density 0.377, coverage 0.773, IS 8.61
  (in the per-machine classifier of earlier sessions: FD 142.4, floor 46.9).
  Rerun on a 2-core Intel Xeon with AVX-512 (a later session): FD 141.1, KID 121.5, precision 0.718,
  recall 0.917, density 0.335, coverage 0.757, IS 8.53, the same to the last digit in a second run
  there. GAN training amplifies the CPUs' different float rounding: read its FD to about 5 %.
Paper: none on digits; DCGAN (Radford et al. 2016) reports no likelihood or FID.
"""

from gm_jax.tasks import with_tiny_size
from gm_jax.tasks.gan import default_config


@with_tiny_size
def get_config():
  config = default_config()
  config.data.update(name="digits", batch_size=64)
  config.model.latent_dim = 100
  for optim in (config.optim, config.optim_d):
    optim.name = "adam"
    optim.learning_rate = 2e-4
    optim.b1 = 0.5
  config.train.update(num_steps=5000, eval_every=1000, sample_every=1000)
  config.eval.batch_size = 100
  return config
