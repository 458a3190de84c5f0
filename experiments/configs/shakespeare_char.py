r"""Character-level Transformer on Tiny Shakespeare in nanoGPT's GPU setting
(config/train_shakespeare_char.py): 6 layers, 6 heads, 384 dims, context 256, batch 64, dropout 0.2,
5000 iterations, learning rate 1e-3 with 100 warmup iterations and cosine decay to 1e-4 at 5000, AdamW
betas (0.9, 0.99), weight decay 0.1 (matrices only), gradient clipping 1.0. Data, split, the exact
validation cross-entropy and the model's differences from nanoGPT's (rotary positions, biases, tanh GELU;
nanoGPT's model has learned positions, no biases and erf GELU: --config.model.positions=learned
--config.model.use_bias=False --config.model.exact_gelu=True) as in shakespeare_char_cpu.py.

Command:
  python experiments/main.py --config=experiments/configs/shakespeare_char.py \
      --config.data.path=PATH/TO/tinyshakespeare.txt --workdir=/tmp/gm_jax/shakespeare_char
Hardware: meant for one accelerator (nanoGPT: about 3 minutes on an A100); on a 2-core CPU only
  `:tiny` has been run (in the test suite).
Our result: not measured.
Reference: nanoGPT reports validation loss 1.4697 (its 200-batch estimate).
"""

import pathlib

from gm_jax.tasks import with_tiny_size
from gm_jax.train.defaults import load_config_file


@with_tiny_size
def get_config():
  config = load_config_file(pathlib.Path(__file__).with_name("shakespeare_char_cpu.py"))
  config.data.update(context=256, batch_size=64)
  config.model.update(num_layers=6, num_heads=6, embed_dim=384, dropout=0.2)
  config.optim.decay_steps = 5000
  config.train.update(num_steps=5000, log_every=250, eval_every=250, checkpoint_every=1000)
  config.eval.sample_length = 256
  return config
