r"""Kingma & Dhariwal (2018), "Glow: Generative Flow with Invertible 1x1 Convolutions", on CIFAR-10.

The published setting: L = 3 levels of K = 32 steps (ActNorm with data-dependent init, invertible 1x1
convolution with the LU parameterization, affine coupling), coupling networks 3x3 conv (512) -> ReLU ->
1x1 conv (512) -> ReLU -> zero-initialized 3x3 conv; uniform dequantization with x - 0.5; Adam with
learning rate 1e-3 warmed up linearly over the first 10 epochs (7,800 steps at batch 64). Each level's
steps are one nn.scan (model.scan_steps): the train step compiles in 6.5 s instead of 52.7 s on one
machine (benchmarks.compile_times).
Differences: the factored-out halves use a learned diagonal Gaussian rather than Glow's prior
conditioned on the remaining half; the run length (not stated in the paper) is set to 1.5M steps. The
authors' code also differs from this config: 8 workers of 64 (batch 512, so its 10 warmup epochs are
about 980 steps), Adamax by default with Polyak-averaged weights for evaluation, random shifts of up to
10 % of the image, and coupling scales sigmoid(h + 2) where ours are exp(bound * tanh(h)).

Command:
  python experiments/main.py --config=experiments/configs/glow_cifar10.py --workdir=/tmp/gm_jax/glow_cifar10
Data, hardware and sample quality: the TFDS image protocol of docs/BASELINES.md (tfds cifar10;
  FID of 50,000 samples in the Inception space; accelerators; only `:tiny` has run on CPU). Every sample,
  the FID's too, is drawn at temperature 0.7 as the paper's pictures are (summary.json's
  sample_temperature); --config.eval.sample_temperature=1.0 judges the model's own distribution.
Our result: not measured (no CIFAR-10 offline here).
Paper: 3.35 bits/dim on the CIFAR-10 test set (affine coupling, 1x1 convolution; Table 2).
Paper FID: none (the paper reports bits/dim and samples).
"""

from gm_jax.tasks import with_tiny_size
from gm_jax.tasks.flow import default_config
from gm_jax.train.defaults import use_fid_protocol


@with_tiny_size
def get_config():
  config = default_config()
  config.data.update(name="cifar10", batch_size=64)
  config.model.update(architecture="glow", conditioner="glow", hidden=(512,), num_levels=3,
                      steps_per_level=32, base="learned", preprocess="shift", scan_steps=True)
  config.optim.warmup_steps = 7_800
  config.train.update(num_steps=1_500_000, log_every=500, eval_every=20_000, sample_every=10_000,
                      checkpoint_every=5_000)
  config.eval.update(batch_size=500, sample_temperature=0.7)
  use_fid_protocol(config)
  return config
