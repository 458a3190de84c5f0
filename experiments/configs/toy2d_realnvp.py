r"""RealNVP on a 2-D toy density (affine couplings with alternating masks, MLP conditioners).

Exact maximum likelihood; the test NLL is reported beside the distribution's entropy floor.
Choose the density with --config.data.distribution=ring|grid|checkerboard|moons|spirals.

Command:
  python experiments/main.py --config=experiments/configs/toy2d_realnvp.py \
      --workdir=/tmp/gm_jax/toy2d_realnvp_ring
  (and --config.data.distribution=checkerboard / moons with their own workdirs)
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2, this config: 64 couplings scanned in pairs, log-scale bound 2, 1,000 warmup
  steps, 12,000 steps; 1,114,496 parameters): ring -2.830 (floor -2.906, 0.076 above it), checkerboard
  2.110 (floor 2.079, 0.031 above), moons 1.008 (floor 1.008; 0.895 against 0.898 on the moons before
  their geometry was corrected to scikit-learn's); 14 / 13 / 14 min on a 2-core Intel Xeon, the ring and
  checkerboard evaluated only at the end (the flags in docs/BASELINES.md). Its train step compiles in
  about 2 s.
  The moons numbers below are on the earlier moons (floor 0.898).
  The config before (32 couplings, bound 3, 200 warmup steps, 30,000 steps; 557,248 parameters): ring
  -2.552 (0.35 above), checkerboard 2.120, moons 0.896; 22-25 min each on shared cores. With 16
  couplings (30,000 steps): ring -2.322, checkerboard 2.135, moons 0.896. With the earlier 8 couplings,
  bound 1 and 6,000 steps: ring -1.501 (77 s), checkerboard 2.241, moons 0.903.
  64 couplings with bound 3 (unrolled): ring -2.827, checkerboard 2.129, moons 0.895 at seed 0, but with
  --config.seed=1 the gradient became non-finite at step 5,041, as over 30,000 steps at step 3,056; with
  bound 2 that seed trained (ring -2.814, unrolled) (docs/BASELINES.md).
  Not closing the ring's last 0.03 nats (one run each): 30,000 steps -2.837, peak learning rate 5e-4
  -2.810, 96 couplings non-finite at step 586 with bound 2 and -2.825 with bound 1.5. The ring's number
  is seed 0's: --config.seed=1 and 2 reach -2.752 and -2.292 (loss spikes set them back). Nor do
  optimizer guards against the spikes: --config.optim.grad_clip_norm=1000 -2.751 and =10 -2.790;
  skipping outlying updates -2.767 and bounding Adam's step (non-finite at step 1,307), both patched
  and not kept; an average of the parameters (--config.train.ema_decay=0.999) -2.838; Adam's shorter
  second-moment memory (--config.optim.b2=0.99) -2.692; nor the conditioners: weight
  normalization (patched) -2.729, three hidden layers (--config.model.hidden="(128,128,128)") -2.793,
  twice the width (--config.model.hidden="(256,256)") -2.811,
  leaky ReLUs (patched; most second-layer units never fire either way) -2.829; nor an ActNorm before
  each coupling (patched): no spikes with bound 1 but -2.635, non-finite at step 1,843 with bound 2;
  nor log-scales a tanh(raw / a), slope 1 at zero (patched): -2.673; nor SiLU conditioners with bound
  1.5 and 2,000 warmup steps (patched; non-finite at step 570), training on noise-annealed data
  (patched) -2.609, or ActNorms with bound 1.5 (patched) -2.753. Longest with the average
  (--config.train.num_steps=30000 --config.train.ema_decay=0.999): -2.844, 0.062 above the floor
  (-2.841 with ema_decay=0.9995). A longer warmup (--config.optim.warmup_steps=2000) did not keep the
  spikes away: late ones (a 250-step mean of 5e9 nats at step 8,500) left the ring at -1.482.
  Spreading the MLP conditioners' initial biases (--config.model.conditioner_bias_init=uniform, whose
  ReLUs are then not all kinked at their inputs' 0) with the average (--config.train.ema_decay=0.999):
  ring -2.855 (0.051 above the floor), but 2.141 on the checkerboard and a non-finite gradient at step 331
  with --config.seed=1 (and at step 1,449 at seed 0 over 30,000 steps), so the config keeps zero
  biases. Batch normalization after each coupling, as the RealNVP paper has (patched, batch
  statistics): no spikes, but slow (training loss -0.64 at step 5,250, where the spread biases were at
  -2.24); stopped there. Nor weight decay (--config.optim.name=adamw --config.optim.weight_decay=0.01):
  smaller spikes, but -2.542 (0.001 with the average: spikes again, -2.273).
  Why the ring stays above its floor (couplings fixed to the coordinate axes; Glow's learned linear maps
  and ActNorm between them close most of it): docs/BASELINES.md. Where the rest lies (70 % of it in the
  modes' cores, where the density is about 15 % low): python experiments/toy2d_flow_gap.py --workdir=...
Paper: none (Dinh et al. 2017 show 2-D densities only as pictures); the floor is the true entropy.
"""

from gm_jax.tasks import with_tiny_size
from gm_jax.tasks.flow import default_config


@with_tiny_size
def get_config():
  config = default_config()
  config.data.update(name="toy2d", distribution="ring")
  config.data.geometry = {}  # the distribution's defaults (ring: radius 2, std 0.02)
  config.data.update(num_train=100_000, num_test=20_000, batch_size=512)
  # The ring's 8 modes of std 0.02 need steep maps: many couplings whose log-scales may reach 2-3 each
  # (coupling_scale_init; the learned bound barely moves from its start). 8 couplings with bound 1 stopped
  # 1.4 nats above the ring's floor; with bound 3, 16 couplings 0.58 and 32 0.35 (30,000 steps) and 64
  # 0.080 (12,000 steps), but 64 couplings with bound 3 diverged for one seed of two (as did bound 3 at
  # learning rate 2e-3); with bound 2 they train. They need 1,000 warmup steps (their loss reached 1.8e8
  # within 250 steps of a 200-step warmup). Scanned in pairs, they compile once (2 s rather than 28) and
  # step faster.
  config.model.update(steps_per_level=64, coupling_scale_init=2.0, scan_steps=True)
  config.optim.update(schedule="cosine", warmup_steps=1000, end_lr_ratio=0.01, grad_clip_norm=100.0)
  config.train.update(num_steps=12_000, log_every=250, eval_every=4000, sample_every=4000,
                      num_samples=4000, checkpoint_every=4000)
  config.eval.batch_size = 5000
  return config
