r"""Flow matching with the optimal-transport (linear) path (Lipman et al. 2023, "FM w/ OT") on CIFAR-10,
unconditional, with the paper's training settings (Appendix E, Table 3) on this project's DDPM U-Net.

The linear path x_t = (1 - t) x_0 + t eps (sigma_min = 0: the paper only says "sufficiently small"), a
U-Net predicting its velocity, the conditional flow-matching loss; 256 channels, multipliers
(1, 2, 2, 2), 2 residual blocks per resolution, attention at 16x16, no dropout; batch 256 for 391k
steps, Adam 5e-4 (betas 0.9, 0.999, eps 1e-8, no weight decay) with 45k linear warmup steps and a linear
decay to 0 (the paper's "polynomial decay"); float32. Samples and likelihood by the adaptive dopri5
solver at rtol = atol = 1e-5, as the paper; the likelihood with uniform dequantization and Hutchinson's
trace estimator. Differences: the DDPM U-Net (one attention head) rather than Dhariwal & Nichol's
(4 heads of 64 channels, BigGAN resampling blocks); no EMA (the paper names none).

Command:
  python experiments/main.py --config=experiments/configs/flow_matching_cifar10.py \
      --workdir=/tmp/gm_jax/flow_matching_cifar10
Data, hardware and sample quality: the TFDS image protocol of docs/BASELINES.md (tfds cifar10;
  FID of 50,000 samples in the Inception space; accelerators; only `:tiny` has run on CPU).
Our result: not measured (no CIFAR-10 offline here).
Paper: CIFAR-10 NLL 2.99 bits/dim (with importance-weighted dequantization; the uniform dequantization
  reported here is an upper bound on it, so expect a higher number), FID 6.35, 142 NFE of dopri5 (Table 1).
"""

from gm_jax.tasks import diffusion, with_tiny_size
from gm_jax.tasks.diffusion import default_config
from gm_jax.train.defaults import use_fid_protocol


@with_tiny_size
def get_config():
  config = default_config()
  config.data.update(name="cifar10", batch_size=256)
  config.model.update(net="unet", channels=256, channel_mults=(1, 2, 2, 2), num_res_blocks=2,
                      attention_resolutions=(16,), dropout=0.0)
  diffusion.use_flow_matching(config)
  config.optim.update(learning_rate=5e-4, b1=0.9, b2=0.999, eps=1e-8, schedule="linear", warmup_steps=45_000,
                      end_lr_ratio=0.0)
  config.train.update(num_steps=391_000, log_every=1000, sample_every=50_000, checkpoint_every=10_000)
  config.eval.update(batch_size=500, ode_exact_trace=False, ode_solver="dopri5", ode_rtol=1e-5,
                     sampler_steps=0)
  use_fid_protocol(config)
  return config
