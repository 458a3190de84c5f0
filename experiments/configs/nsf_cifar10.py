r"""Durkan et al. (2019), "Neural Spline Flows": RQ-NSF (C) on CIFAR-10 (8-bit).

Glow's multi-scale architecture with rational-quadratic spline couplings: 3 levels of 7 steps (ActNorm,
invertible 1x1 convolution with the LU parameterization, spline coupling on half the channels), tails
outside [-3, 3], minimum bin width/height/slope 1e-3, coupling networks ResNets of 3 residual blocks;
uniform dequantization with x - 0.5 (Glow's preprocessing); random horizontal flips; Adam 5e-4 with
cosine annealing to 0, batch 512, 200k steps; 96 hidden channels and 4 bins (the authors' 8-bit
CIFAR-10 configuration). Differences: our ResNet conditioner has no batch normalization or dropout (the
authors use both, dropout 0.2); the levels factor out half their dimensions as Glow's do, where that
configuration keeps all of them to the end (multi_scale false); the base is a learned diagonal
Gaussian over all dimensions. Each level's steps are one nn.scan (model.scan_steps): the train
step compiled in 15.0 s instead of 23.0 s on one machine when the config had 8 bins, and compiles in
11.2 s with its 4 bins on another (benchmarks.compile_times; docs/BASELINES.md, "Speed").

Command:
  python experiments/main.py --config=experiments/configs/nsf_cifar10.py --workdir=/tmp/gm_jax/nsf_cifar10
Data, hardware and sample quality: the TFDS image protocol of docs/BASELINES.md (tfds cifar10;
  FID of 50,000 samples in the Inception space; accelerators; only `:tiny` has run on CPU).
Our result: not measured (no CIFAR-10 offline here).
Paper: RQ-NSF (C) 3.38 bits/dim on the CIFAR-10 test set (Table 4).
Paper FID: none (the paper reports bits/dim and samples).
"""

from gm_jax.tasks import with_tiny_size
from gm_jax.tasks.flow import default_config
from gm_jax.train.defaults import use_fid_protocol


@with_tiny_size
def get_config():
  config = default_config()
  config.data.update(name="cifar10", batch_size=512, random_flip=True)
  # conv conditioners: features, then one entry per residual block
  config.model.update(architecture="nsf", hidden=(96, 96, 96, 96), num_levels=3, steps_per_level=7,
                      base="learned", preprocess="shift", scan_steps=True, num_bins=4)
  config.optim.update(learning_rate=5e-4, schedule="cosine")
  config.train.update(num_steps=200_000, log_every=500, eval_every=10_000, sample_every=10_000,
                      checkpoint_every=5_000)
  config.eval.batch_size = 500
  use_fid_protocol(config)
  return config
