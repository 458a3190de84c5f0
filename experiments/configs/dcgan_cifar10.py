r"""The seed's DCGAN at 32x32 on CIFAR-10 (three stride-2 layers each way), non-saturating loss.

Same networks and optimizer as dcgan_celeba64.py (Adam 2e-4, beta1 0.5, batch 128, N(0, 0.02) weights),
sized for 32x32x3 images.

Command:
  python experiments/main.py --config=experiments/configs/dcgan_cifar10.py --workdir=/tmp/gm_jax/dcgan_cifar10
Data, hardware and sample quality: the TFDS image protocol of docs/BASELINES.md (tfds cifar10;
  FID of 50,000 samples in the Inception space; accelerators; only `:tiny` has run on CPU).
Our result: not measured (no CIFAR-10 offline here).
Paper: Radford et al. (2016) evaluate CIFAR-10 through features for classification, not sample quality.
"""

import pathlib

from gm_jax.tasks import with_tiny_size
from gm_jax.train.defaults import load_config_file


@with_tiny_size
def get_config():
  config = load_config_file(pathlib.Path(__file__).with_name("dcgan_celeba64.py"))
  config.data.update(name="cifar10", crop=0, image_size=0)
  config.train.num_steps = 100_000
  return config
