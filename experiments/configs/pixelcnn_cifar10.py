r"""Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders") on
CIFAR-10.

The paper's model: gated blocks with vertical and horizontal stacks (no blind spot), R -> G -> B
ordering inside each pixel through channel-group masks, a 256-way softmax per sub-pixel, exact
likelihood. Architecture: 20 gated layers of 384 feature maps with 5x5 filters (the paper's description
of its large models) after a 7x7 mask-A first layer (as in PixelRNN's PixelCNN). The paper does not publish its CIFAR-10 optimizer
schedule; ours: Adam 3e-4 with 1,000 warmup steps and cosine decay, batch 64, 500k steps, gradient
clipping 1.0, and a 1x1 output head of 1,026 features (the paper does not state its head's width).

Command:
  python experiments/main.py --config=experiments/configs/pixelcnn_cifar10.py --workdir=/tmp/gm_jax/pixelcnn_cifar10
Data: tfds cifar10 (prepare it once: `tfds build cifar10 --file_format=array_record`).
Hardware: needs accelerators; on a 2-core CPU only `:tiny` has been run (in the test suite, under
  tfds.testing.mock_data).
Sample quality: FID (and KID, P/R/D/C, IS) in the FID Inception space, 50,000 samples against the
  training split, test split as the data floor; pass the converted weights with
  --config.eval.inception_weights=FILE (gm_jax/evaluation/inception_weights.py says how to make it).
Our result: not measured (no CIFAR-10 offline here).
Paper: 3.03 bits/dim on the CIFAR-10 test set (Table 1).
Paper FID: none (the paper reports bits/dim and samples).
"""

from gm_jax.tasks.pixelcnn import default_config
from gm_jax.train.defaults import use_fid_protocol


def get_config(arg: str | None = None):
  config = default_config()
  config.data.name = "cifar10"
  config.data.batch_size = 64
  config.model.features = 384
  config.model.num_layers = 20
  config.model.first_kernel = 7
  config.model.kernel = 5
  config.model.head_features = 1026  # a multiple of the 3 channels
  config.optim.name = "adam"
  config.optim.learning_rate = 3e-4
  config.optim.schedule = "cosine"
  config.optim.warmup_steps = 1000
  config.optim.grad_clip_norm = 1.0
  config.train.num_steps = 500_000
  config.train.log_every = 500
  config.train.eval_every = 20_000
  config.train.sample_every = 50_000
  config.train.checkpoint_every = 5_000
  config.train.num_samples = 16
  config.eval.batch_size = 500
  use_fid_protocol(config, tiny=arg == "tiny")
  if arg == "tiny":
    config.data.batch_size = 4
    config.model.features = 6
    config.model.num_layers = 2
    config.model.kernel = 3
    config.model.head_features = 12
    config.optim.warmup_steps = 1
    config.train.num_steps = 4
    config.train.log_every = 2
    config.train.eval_every = 0
    config.train.sample_every = 0
    config.train.checkpoint_every = 4
    config.train.num_samples = 2
    config.eval.batch_size = 4
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; use ':tiny' or nothing")
  return config
