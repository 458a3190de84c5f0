r"""Score SDE (Song et al. 2021), VP SDE on CIFAR-10: the continuous-time DDPM++ setting.

VP SDE with beta_min 0.1, beta_max 20; denoising score matching (noise prediction); the U-Net with
128 channels, multipliers (1, 2, 2, 2), four residual blocks per resolution, attention at 16x16,
dropout 0.1; Adam 2e-4 with 5000 warmup steps, gradient clipping 1.0, batch 128, EMA 0.9999, 1.3M
steps; random horizontal flips; samples by the reverse SDE's Euler-Maruyama predictor in 1000 steps
without a corrector (the authors' VP configs) and the probability-flow ODE likelihood (Hutchinson
trace, uniform dequantization).
Differences: DDPM++'s BigGAN-style residual blocks and skip rescaling are not implemented (the DDPM
U-Net's blocks are used). Runs of identical blocks are one nn.scan each
(model.scan_blocks): the train step compiles in 34.0 s instead of 41.5 s (benchmarks.compile_times).

Command:
  python experiments/main.py --config=experiments/configs/score_sde_vp_cifar10.py \
      --workdir=/tmp/gm_jax/score_sde_vp_cifar10
Data, hardware and sample quality: the TFDS image protocol of docs/BASELINES.md (tfds cifar10;
  FID of 50,000 samples in the Inception space; accelerators; only `:tiny` has run on CPU).
Our result: not measured (no CIFAR-10 offline here).
Paper (Table 2, the probability-flow ODE): 3.16 bits/dim for DDPM++ cont. with the VP SDE, this
  config's process; the paper's best, 2.99, is the deep DDPM++ with the sub-VP SDE.
Paper FID: the paper's best CIFAR-10 FID, 2.20, is a different model (NCSN++ cont., deep, VE SDE).
"""

import pathlib

from gm_jax.tasks import with_tiny_size
from gm_jax.train.defaults import load_config_file


@with_tiny_size
def get_config():
  config = load_config_file(pathlib.Path(__file__).with_name("ddpm_cifar10.py"))
  config.process.name = "vp"
  # Hutchinson's trace, as the docstring says: the exact one costs 3,072 passes per ODE step.
  config.eval.update(ode=True, ode_exact_trace=False, vlb=False, sampler="euler_maruyama",
                     sampler_steps=1000)
  config.model.update(num_res_blocks=4, scan_blocks=True)
  config.train.num_steps = 1_300_000
  return config
