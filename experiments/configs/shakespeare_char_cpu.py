r"""Character-level Transformer on Tiny Shakespeare in nanoGPT's CPU setting.

nanoGPT (config/train_shakespeare_char.py with its CPU overrides): 4 layers, 4 heads, 128 dims,
context 64, batch 12, 2000 iterations, learning rate 1e-3 with 100 warmup iterations and cosine decay
to 1e-4 at 2000, AdamW betas (0.9, 0.99), weight decay 0.1 (matrices only), gradient clipping 1.0,
dropout 0; character vocabulary of the corpus, 90/10 train/validation split. The model differs from
nanoGPT's in rotary position embeddings instead of learned ones, biases in its linear and LayerNorm
layers, and the tanh approximation of GELU (--config.model.positions=learned --config.model.use_bias=False
--config.model.exact_gelu=True give nanoGPT's model). The validation loss here is the exact
cross-entropy over the whole validation split (nanoGPT estimates it from 20 random batches).
The corpus comes from --config.data.path (a text file) or, when that is empty, tfds tiny_shakespeare.

Command:
  python experiments/main.py --config=experiments/configs/shakespeare_char_cpu.py \
      --config.data.path=PATH/TO/tinyshakespeare.txt --workdir=/tmp/gm_jax/shakespeare_char_cpu
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2): validation cross-entropy 1.794 nats/char = 2.588 bits/char (exact, whole
  split). With nanoGPT's learned positions: 1.913 (and 1.916 also without biases and with erf GELU, as
  nanoGPT's model has them). With --config.train.compute_dtype=bfloat16: 1.794 as well (1.7943 against
  1.7941). After the attention began recomputing its weights in the backward pass (step memory 37.4
  MB against PyTorch's 38.6): 1.7941 again, and 1.7955 in bfloat16 (one run each); after the GELU got
  its own backward pass: 1.7941 and 1.7961 (101 s and 79 s on two cores). Speed beside the same
  model in PyTorch, in one run (`python -m benchmarks.lm_step
  --threads=1`, docs/BASELINES.md "Speed"): the train step takes 0.88x PyTorch's time in float32 and
  0.53x in bfloat16 on one core, 1.03x and 0.74x on two. 2000 steps plus the exact validation pass take
  80 s (59 s in bfloat16) on two cores.
  Scored with each character's whole context of 64 (--mode=eval --config.data.eval_stride=1; the
  default scores consecutive windows, as nanoGPT does): 1.760 nats/char = 2.539 bits/char (203 s).
Reference: nanoGPT reaches about 1.88 validation loss with this setting (1.886 measured with its
  PyTorch code on this 2-core machine) at about 60 ms per train step.
"""

from gm_jax.tasks import with_tiny_size
from gm_jax.tasks.language_model import default_config


@with_tiny_size
def get_config():
  config = default_config()
  config.data.update(name="text", tfds_name="tiny_shakespeare", context=64, batch_size=12)
  config.model.positions = "rotary"
  config.optim.update(name="adamw", b2=0.99, weight_decay=0.1, schedule="cosine", warmup_steps=100,
                      decay_steps=2000, end_lr_ratio=0.1, grad_clip_norm=1.0)
  config.train.update(num_steps=2000, eval_every=500, checkpoint_every=500, num_samples=2)
  config.eval.batch_size = 256
  return config
