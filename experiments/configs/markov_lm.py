r"""A small Transformer LM on a synthetic first-order Markov chain: its cross-entropy must reach the
chain's entropy rate (the lowest any model can reach), which checks the whole LM pipeline end to end.

Chain: 8 symbols, transition rows from Dirichlet(0.3) (seeded), 400,000 tokens (90/10 split).
Model: 2 layers, 2 heads, 64 dims, context 32; AdamW 3e-3, cosine, 1500 steps of batch 64.

Command:
  python experiments/main.py --config=experiments/configs/markov_lm.py --workdir=/tmp/gm_jax/markov_lm
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2, 38 s): test cross-entropy 1.4245 nats/token against the entropy rate 1.4242
  (the chain's own NLL on the test split: 1.4240).
Paper: none; the floor is the chain's entropy rate.
"""

from gm_jax.tasks import with_tiny_size
from gm_jax.tasks.language_model import default_config


@with_tiny_size
def get_config():
  config = default_config()
  config.data.update(name="markov", vocab_size=8, num_tokens=400_000, context=32, concentration=0.3,
                     batch_size=64)
  config.model.update(num_layers=2, num_heads=2, embed_dim=64)
  config.optim.update(name="adamw", learning_rate=3e-3, b2=0.99, weight_decay=0.01, schedule="cosine",
                      warmup_steps=50, end_lr_ratio=0.05, grad_clip_norm=1.0)
  config.train.update(num_steps=1500, eval_every=500, checkpoint_every=500, num_samples=4)
  config.eval.update(batch_size=250, sample_length=32)
  return config
