r"""PixelRNN (van den Oord et al. 2016) on scikit-learn digits (8x8, 17 grey levels): Diagonal BiLSTM
by default, Row LSTM with --config.model.architecture=row_lstm.

A 7x7 mask-A convolution to 64 features, 2 Diagonal BiLSTM layers of 32 units (the paper's residual
block: 2h features in, h LSTM units, a 1x1 mask-B convolution back to 2h) with dropout 0.5 on the LSTM
output, two ReLU + 1x1 mask-B output layers (64 features, then 17 logits per pixel). The loss, the exact
likelihood (estimator 'exact') and the raster sampler are the Gated PixelCNN's (digits_pixelcnn.py).
Adam 1e-3 with cosine decay, batch 64, 2000 steps.

Command:
  python experiments/main.py --config=experiments/configs/digits_pixelrnn.py --workdir=/tmp/gm_jax/digits_pixelrnn
Hardware: 2-core CPU, no accelerator.
Our result: not measured.
Paper: none on digits; digits_pixelcnn.py's 1.757 bits/dim is the comparison.
"""

from gm_jax.tasks.pixelrnn import default_config


def get_config(arg: str | None = None):
  config = default_config()
  config.data.name = "digits"
  config.data.batch_size = 64
  config.model.architecture = "diagonal_bilstm"
  config.model.features = 64
  config.model.hidden = 32
  config.model.num_layers = 2
  config.model.first_kernel = 7
  config.model.head_features = 64
  config.model.dropout = 0.5  # 1,497 training digits (digits_pixelcnn.py needs it too)
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
    config.model.hidden = 4
    config.model.num_layers = 1
    config.model.first_kernel = 3
    config.model.head_features = 8
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
