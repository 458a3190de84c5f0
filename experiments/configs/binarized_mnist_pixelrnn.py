r"""Van den Oord et al. (2016), "Pixel Recurrent Neural Networks", on binarized MNIST: the Diagonal
BiLSTM of 7 layers with h = 16 (the paper's best MNIST model).

A 7x7 mask-A convolution, 7 Diagonal BiLSTM layers of 16 units with residual connections (2h = 32
features), two ReLU + 1x1 mask-B output layers and a 2-way softmax per pixel; exact likelihood; batch 16
as the paper's. Ours: the optimizer, schedule and run length (Adam 1e-3 with warmup and cosine decay,
200k steps, gradient clipping 1.0; the paper uses RMSProp) and the output layer width (32). Differences:
no learnable skip connections to the output and a zero initial LSTM state (the paper has both).

Command:
  python experiments/main.py --config=experiments/configs/binarized_mnist_pixelrnn.py \
      --workdir=/tmp/gm_jax/bmnist_pixelrnn
Data: tfds binarized_mnist (prepare it once: `tfds build binarized_mnist --file_format=array_record`).
Hardware: needs an accelerator; on a 2-core CPU only `:tiny` has been run (in the test suite, under
  tfds.testing.mock_data).
Our result: not measured (no binarized MNIST offline here).
Paper: Diagonal BiLSTM (7 layers, h = 16) 79.20 nats on the binarized MNIST test set; PixelCNN 81.30
  (Table 4).
"""

from gm_jax.tasks import with_tiny_size
from gm_jax.tasks.pixelrnn import default_config


@with_tiny_size
def get_config():
  config = default_config()
  config.data.update(name="binarized_mnist", batch_size=16)
  config.model.update(hidden=16, num_layers=7, head_features=32)
  config.optim.update(schedule="cosine", warmup_steps=1000, grad_clip_norm=1.0)
  config.train.update(num_steps=200_000, log_every=500, eval_every=20_000, sample_every=20_000,
                      checkpoint_every=5_000, num_samples=16)
  config.eval.batch_size = 100
  return config
