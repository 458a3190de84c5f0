r"""Van den Oord et al. (2016), "Pixel Recurrent Neural Networks", on CIFAR-10: Row LSTM or Diagonal
BiLSTM (`:row_lstm` or `:diagonal_bilstm`, the default).

The paper's model: a 7x7 mask-A convolution, 12 LSTM layers of h = 128 units with residual connections
(2h = 256 features in, a 1x1 mask-B convolution back to 2h; here h = 129 and 2h = 258, the nearest
sizes that split evenly into the R, G and B groups the masks need), mask-B input-to-state maps (Row LSTM: 1x3
input-to-state and 1x3 state-to-state convolutions; Diagonal BiLSTM: 1x1 input-to-state and 2x1
state-to-state on the skewed map, the right-to-left output shifted down one row), R -> G -> B ordering
inside each pixel, two ReLU + 1x1 mask-B output layers and a 256-way softmax per sub-pixel; exact
likelihood; batch 16 as the paper's. Ours: the optimizer, schedule and run length (Adam 3e-4 with warmup
and cosine decay, 500k steps, gradient clipping 1.0; the paper uses RMSProp) and the 1,026-feature output
layer. Differences: no learnable skip connections from each layer to the output (the paper has them
beside the residual ones) and a zero initial LSTM state (the paper learns it).

Command:
  python experiments/main.py --config=experiments/configs/pixelrnn_cifar10.py:diagonal_bilstm \
      --workdir=/tmp/gm_jax/pixelrnn_cifar10
Data, hardware and sample quality: the TFDS image protocol of docs/BASELINES.md (tfds cifar10;
  FID of 50,000 samples in the Inception space; accelerators; only `:tiny` has run on CPU).
Our result: not measured (no CIFAR-10 offline here).
Paper: Row LSTM 3.07 and Diagonal BiLSTM 3.00 bits/dim on the CIFAR-10 test set (Table 5).
Paper FID: none (the paper reports bits/dim and samples).
"""

from gm_jax.tasks import with_tiny_size
from gm_jax.tasks.pixelrnn import ARCHITECTURES, default_config
from gm_jax.train.defaults import use_fid_protocol


@with_tiny_size
def get_config(arg: str | None = None):
  parts = [p for p in (arg or "").split(",") if p]
  for part in parts:
    if part not in ARCHITECTURES:
      raise ValueError(f"unknown config argument {part!r}; use row_lstm or diagonal_bilstm (and/or tiny)")
  if len(parts) > 1:
    raise ValueError(f"config arguments {','.join(parts)} name two architectures; give one of row_lstm or "
                     f"diagonal_bilstm")
  config = default_config()
  config.data.update(name="cifar10", batch_size=16)
  config.model.architecture = next((p for p in parts if p in ARCHITECTURES), "diagonal_bilstm")
  # Feature counts are multiples of the 3 channels (the masks group features by channel).
  config.model.update(features=258, hidden=129, num_layers=12, head_features=1026)
  config.optim.update(learning_rate=3e-4, schedule="cosine", warmup_steps=1000, grad_clip_norm=1.0)
  config.train.update(num_steps=500_000, log_every=500, eval_every=20_000, sample_every=50_000,
                      checkpoint_every=5_000, num_samples=16)
  config.eval.batch_size = 100
  use_fid_protocol(config)
  return config
