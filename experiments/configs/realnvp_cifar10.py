r"""Dinh, Sohl-Dickstein & Bengio (2017), "Density estimation using Real NVP", on CIFAR-10.

The published setting: uniform dequantization, logit preprocessing with alpha = 0.05; the multi-scale
architecture (per scale: 3 affine checkerboard couplings, squeeze, 3 channel couplings, factor out half;
last scale: 4 checkerboard couplings), with 2 scales on 32x32x3 (the paper downscales CIFAR-10 once);
coupling networks are ResNets with 8 residual blocks of 64 feature maps; random horizontal flips; Adam,
learning rate 1e-3, batch 64.
Differences: our coupling ResNets have neither batch normalization nor weight normalization (so the
paper's L2 penalty of 5e-5 on the weight-norm scales has no counterpart), and the last scale uses 3
couplings like the others; the paper gives no step count, so 500k steps are set here. Each coupling
ResNet's residual blocks are one nn.scan (model.scan_blocks): with the 3 scales this config had before,
the train step compiled in 14.5-16.6 s instead of 33.1-33.8 s on one 2-core CPU
(benchmarks.compile_times; same function, stacked parameters).

Command:
  python experiments/main.py --config=experiments/configs/realnvp_cifar10.py \
      --workdir=/tmp/gm_jax/realnvp_cifar10
Data, hardware and sample quality: the TFDS image protocol of docs/BASELINES.md (tfds cifar10;
  FID of 50,000 samples in the Inception space; accelerators; only `:tiny` has run on CPU).
Our result: not measured (no CIFAR-10 offline here).
Paper: 3.49 bits/dim on the CIFAR-10 test set.
Paper FID: none (the paper reports bits/dim and samples).
"""

from gm_jax.tasks import with_tiny_size
from gm_jax.tasks.flow import default_config
from gm_jax.train.defaults import use_fid_protocol


@with_tiny_size
def get_config():
  config = default_config()
  config.data.update(name="cifar10", batch_size=64, random_flip=True)
  config.model.hidden = (64,) * 9  # 64 features, 8 residual blocks
  config.model.update(num_levels=2, steps_per_level=3, preprocess="logit", scan_blocks=True)
  config.train.update(num_steps=500_000, log_every=500, eval_every=20_000, sample_every=10_000,
                      checkpoint_every=5_000)
  config.eval.batch_size = 500
  use_fid_protocol(config)
  return config
