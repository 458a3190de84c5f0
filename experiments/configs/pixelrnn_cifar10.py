r"""Van den Oord et al. (2016), "Pixel Recurrent Neural Networks", on CIFAR-10: Row LSTM or Diagonal
BiLSTM (`:row_lstm` or `:diagonal_bilstm`, the default).

The paper's model: a 7x7 mask-A convolution, 12 LSTM layers of h = 128 units with residual connections
(2h = 256 features in, a 1x1 mask-B convolution back to 2h), mask-B input-to-state maps (Row LSTM: 1x3
input-to-state and 1x3 state-to-state convolutions; Diagonal BiLSTM: 1x1 input-to-state and 2x1
state-to-state on the skewed map, the right-to-left output shifted down one row), R -> G -> B ordering
inside each pixel, two ReLU + 1x1 mask-B output layers and a 256-way softmax per sub-pixel; exact
likelihood. The optimizer, schedule, batch, run length and the 1,026-feature output layer are ours
(Adam 3e-4 with warmup and cosine decay, batch 16, 500k steps, gradient clipping 1.0).

Command:
  python experiments/main.py --config=experiments/configs/pixelrnn_cifar10.py:diagonal_bilstm --workdir=/tmp/gm_jax/pixelrnn_cifar10
Data: tfds cifar10 (prepare it once: `tfds build cifar10 --file_format=array_record`).
Hardware: needs accelerators; on a 2-core CPU only `:tiny` has been run (in the test suite, under
  tfds.testing.mock_data).
Sample quality: FID (and KID, P/R/D/C, IS) in the FID Inception space, 50,000 samples against the
  training split, test split as the data floor; pass the converted weights with
  --config.eval.inception_weights=FILE (gm_jax/evaluation/inception_weights.py says how to make it).
Our result: not measured (no CIFAR-10 offline here).
Paper: Row LSTM 3.07 and Diagonal BiLSTM 3.00 bits/dim on the CIFAR-10 test set (Table 5).
Paper FID: none (the paper reports bits/dim and samples).
"""

from gm_jax.tasks.pixelrnn import default_config
from gm_jax.train.defaults import use_fid_protocol


def get_config(arg: str | None = None):
  parts = [p for p in (arg or "").split(",") if p]
  architecture = "diagonal_bilstm"
  for part in parts:
    if part in ("row_lstm", "diagonal_bilstm"):
      architecture = part
    elif part != "tiny":
      raise ValueError(f"unknown config argument {part!r}; use row_lstm, diagonal_bilstm and/or tiny")
  tiny = "tiny" in parts
  config = default_config()
  config.data.name = "cifar10"
  config.data.batch_size = 16
  config.model.architecture = architecture
  config.model.features = 256
  config.model.hidden = 128
  config.model.num_layers = 12
  config.model.first_kernel = 7
  config.model.row_kernel = 3
  config.model.head_features = 1026  # a multiple of the 3 channels
  config.optim.name = "adam"
  config.optim.learning_rate = 3e-4
  config.optim.schedule = "cosine"
  config.optim.warmup_steps = 1000
  config.optim.grad_clip_norm = 1.0
  config.train.num_steps = 500_000
  config.train.log_every = 500
  config.train.eval_every = 20_000
  config.train.sample_every = 50_000
  config.train.checkpoint_every = 5_000
  config.train.num_samples = 16
  config.eval.batch_size = 100
  use_fid_protocol(config, tiny=tiny)
  if tiny:
    config.data.batch_size = 4
    config.model.features = 6
    config.model.hidden = 3
    config.model.num_layers = 1
    config.model.first_kernel = 3
    config.model.head_features = 6
    config.optim.warmup_steps = 1
    config.train.num_steps = 4
    config.train.log_every = 2
    config.train.eval_every = 0
    config.train.sample_every = 0
    config.train.checkpoint_every = 4
    config.train.num_samples = 2
    config.eval.batch_size = 4
  return config
