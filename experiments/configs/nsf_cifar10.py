r"""Durkan et al. (2019), "Neural Spline Flows": RQ-NSF (C) on CIFAR-10 (8-bit).

Glow's multi-scale architecture with rational-quadratic spline couplings: 3 levels of 7 steps (ActNorm,
invertible 1x1 convolution with the LU parameterization, spline coupling on half the channels), tails
outside [-3, 3], minimum bin width/height/slope 1e-3, coupling networks ResNets of 3 residual blocks;
uniform dequantization with x - 0.5 (Glow's preprocessing); Adam 5e-4 with cosine annealing to 0, batch
512, 100k steps. These follow the authors' published image configurations; the 96 hidden channels and 8
bins are our reading of the paper's CIFAR-10 hyperparameter table. Differences: our ResNet conditioner
has no batch normalization or dropout (the authors use both, dropout 0.2), and the base is a learned
diagonal Gaussian over all dimensions.

Command:
  python experiments/main.py --config=experiments/configs/nsf_cifar10.py --workdir=/tmp/gm_jax/nsf_cifar10
Data: tfds cifar10 (prepare it once: `tfds build cifar10 --file_format=array_record`).
Hardware: needs accelerators; on a 2-core CPU only `:tiny` has been run (in the test suite, under
  tfds.testing.mock_data).
Sample quality: FID (and KID, P/R/D/C, IS) in the FID Inception space, 50,000 samples against the
  training split, test split as the data floor; pass the converted weights with
  --config.eval.inception_weights=FILE (gm_jax/evaluation/inception_weights.py says how to make it).
Our result: not measured (no CIFAR-10 offline here).
Paper: RQ-NSF (C) 3.38 bits/dim on the CIFAR-10 test set (Table 4).
Paper FID: none (the paper reports bits/dim and samples).
"""

from gm_jax.tasks.flow import default_config
from gm_jax.train.defaults import use_fid_protocol


def get_config(arg: str | None = None):
  config = default_config()
  config.data.name = "cifar10"
  config.data.batch_size = 512
  config.model.architecture = "nsf"
  config.model.conditioner = "conv"
  config.model.hidden = (96, 96, 96, 96)  # features, then one entry per residual block
  config.model.num_levels = 3
  config.model.steps_per_level = 7
  config.model.num_bins = 8
  config.model.tail_bound = 3.0
  config.model.base = "learned"
  config.model.preprocess = "shift"
  config.objective.dequantization = "uniform"
  config.optim.learning_rate = 5e-4
  config.optim.schedule = "cosine"
  config.optim.warmup_steps = 0
  config.optim.end_lr_ratio = 0.0
  config.train.num_steps = 100_000
  config.train.log_every = 500
  config.train.eval_every = 10_000
  config.train.sample_every = 10_000
  config.train.checkpoint_every = 5_000
  config.eval.batch_size = 500
  use_fid_protocol(config, tiny=arg == "tiny")
  if arg == "tiny":
    config.data.batch_size = 4
    config.model.hidden = (4, 4)
    config.model.num_levels = 2
    config.model.steps_per_level = 1
    config.model.num_bins = 4
    config.train.num_steps = 4
    config.train.log_every = 2
    config.train.eval_every = 0
    config.train.sample_every = 0
    config.train.checkpoint_every = 4
    config.train.num_samples = 4
    config.eval.batch_size = 4
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; use ':tiny' or nothing")
  return config
