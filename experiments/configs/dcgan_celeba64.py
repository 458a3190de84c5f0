r"""The seed's DCGAN at 64x64 on CelebA (Radford, Metz & Chintala 2016), non-saturating loss.

The paper's recipe: BatchNorm + ReLU in the generator (none on its output, tanh there), strided
convolutions, BatchNorm and LeakyReLU(0.2) in the discriminator (none on its input), all weights
N(0, 0.02), Adam with learning rate 2e-4 and beta1 0.5, batch 128, images scaled to [-1, 1]. The
network is seed 004's, layer for layer (its parameter counts are tested): z (100) -> 4x4x512 ->
transposed convolutions to 64x64x3, and strided 4x4 convolutions in the discriminator, the widths of
the common PyTorch DCGAN (64 base features), half those of the paper's Figure 1 (4x4x1024); z is drawn
from N(0, I) where the paper draws it uniformly. The paper has no CelebA experiment: the 108x108 centre
crop resized to 64x64 and the 25 epochs are the usual CelebA settings of DCGAN ports.

Command:
  python experiments/main.py --config=experiments/configs/dcgan_celeba64.py \
      --workdir=/tmp/gm_jax/dcgan_celeba64
Data, hardware and sample quality: the TFDS image protocol of docs/BASELINES.md (tfds celeb_a;
  FID of 50,000 samples in the Inception space; accelerators; only `:tiny` has run on CPU).
  Its train step of batch 64 takes 0.9-1.4x the time of PyTorch's step of the same network on the
  same 2-core CPU, by CPU and thread count (benchmarks/dcgan_step.py; docs/BASELINES.md, "Speed").
Our result: not measured (no CelebA offline here).
Paper: samples only; Radford et al. report no quantitative sample-quality number for faces.
"""

from gm_jax.tasks import with_tiny_size
from gm_jax.tasks.gan import default_config
from gm_jax.train.defaults import use_fid_protocol


@with_tiny_size
def get_config():
  config = default_config()
  config.data.update(name="celeb_a", crop=108, image_size=64)
  config.model.latent_dim = 100
  for optim in (config.optim, config.optim_d):
    optim.name = "adam"
    optim.learning_rate = 2e-4
    optim.b1 = 0.5
  config.train.num_steps = 25 * 162_770 // 128  # 25 epochs of the training split
  config.train.update(log_every=200, eval_every=5000, sample_every=2000, checkpoint_every=2000)
  config.eval.batch_size = 500
  use_fid_protocol(config)
  return config
