r"""Gated PixelCNN on scikit-learn digits (8x8, 17 grey levels): the exact likelihood reference on digits.

A 7x7 mask-A gated block, then gated blocks with 3x3 kernels (vertical and horizontal stacks, no blind
spot), 64 features per stack, dropout 0.5 on the gated features, a 1x1 head of 256 and a 17-way
softmax per pixel. Adam 1e-3 with cosine decay, batch 64, 2000 steps. Reported: the exact test negative
log-likelihood over the 300 test digits (nll_nats, bits/dim; estimator 'exact').

Command:
  python experiments/main.py --config=experiments/configs/digits_pixelcnn.py --workdir=/tmp/gm_jax/digits_pixelcnn
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2): test NLL 77.93 nats = 1.757 bits/dim (exact), 13 min with the 2 cores shared.
Paper: none on digits; this is the exact-likelihood row the other digits models are compared with.
"""

from gm_jax.tasks.pixelcnn import default_config


def get_config(arg: str | None = None):
  config = default_config()
  config.data.name = "digits"
  config.data.batch_size = 64
  config.model.features = 64
  config.model.num_layers = 5
  config.model.first_kernel = 7
  config.model.kernel = 3
  config.model.head_features = 256
  config.model.dropout = 0.5  # 1,497 training digits: without it the test NLL rises after ~500 steps
  config.optim.learning_rate = 1e-3
  config.optim.schedule = "cosine"
  config.optim.warmup_steps = 100
  config.optim.grad_clip_norm = 1.0
  config.train.num_steps = 2000
  config.train.log_every = 100
  config.train.eval_every = 500
  config.train.sample_every = 1000
  config.train.checkpoint_every = 1000
  config.eval.batch_size = 100
  if arg == "tiny":
    config.model.features = 8
    config.model.num_layers = 2
    config.model.head_features = 16
    config.optim.warmup_steps = 2
    config.train.num_steps = 10
    config.train.log_every = 5
    config.train.eval_every = 0
    config.train.sample_every = 0
    config.train.checkpoint_every = 10
    config.train.num_samples = 16
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; use ':tiny' or nothing")
  return config
