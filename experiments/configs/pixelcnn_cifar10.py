r"""Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders") on
CIFAR-10.

The paper's model: gated blocks with vertical and horizontal stacks (no blind spot), R -> G -> B
ordering inside each pixel through channel-group masks, a 256-way softmax per sub-pixel, exact
likelihood. Architecture: 20 gated layers of 384 feature maps (the paper's description of its large
models), the first with 7x7 mask-A filters (as in PixelRNN's PixelCNN), the other 19 with 5x5 ones.
The paper does not publish its CIFAR-10 optimizer schedule; ours: Adam 3e-4 with 1,000 warmup steps
and cosine decay, batch 64, 500k steps, gradient clipping 1.0, and a 1x1 output head of 1,026 features
(the paper does not state its head's width).

Command:
  python experiments/main.py --config=experiments/configs/pixelcnn_cifar10.py \
      --workdir=/tmp/gm_jax/pixelcnn_cifar10
Data, hardware and sample quality: the TFDS image protocol of docs/BASELINES.md (tfds cifar10;
  FID of 50,000 samples in the Inception space; accelerators; only `:tiny` has run on CPU).
Our result: not measured (no CIFAR-10 offline here).
Paper: 3.03 bits/dim on the CIFAR-10 test set (Table 1).
Paper FID: none (the paper reports bits/dim and samples).
"""

from gm_jax.tasks import with_tiny_size
from gm_jax.tasks.pixelcnn import default_config
from gm_jax.train.defaults import use_fid_protocol


@with_tiny_size
def get_config():
  config = default_config()
  config.data.update(name="cifar10", batch_size=64)
  config.model.update(features=384, num_layers=20, kernel=5)
  config.model.head_features = 1026  # a multiple of the 3 channels
  config.optim.update(learning_rate=3e-4, schedule="cosine", warmup_steps=1000, grad_clip_norm=1.0)
  config.train.update(num_steps=500_000, log_every=500, eval_every=20_000, sample_every=50_000,
                      checkpoint_every=5_000, num_samples=16)
  config.eval.batch_size = 500
  use_fid_protocol(config)
  return config
