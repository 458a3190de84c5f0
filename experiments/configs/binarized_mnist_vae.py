r"""Kingma & Welling (2014), "Auto-Encoding Variational Bayes": the MNIST VAE.

The published setting: Bernoulli decoder, one hidden layer of 500 tanh units in encoder and decoder,
a 20-dimensional Gaussian latent (the paper sweeps 3..200), one sample per data point, minibatches of
100, Adagrad with global step size 0.02 (chosen from {0.01, 0.02, 0.1}), trained for about 10^8 training
examples (10^6 steps). Evaluated here by the ELBO and by IWAE-5000.

Command:
  python experiments/main.py --config=experiments/configs/binarized_mnist_vae.py \
      --workdir=/tmp/gm_jax/bmnist_vae
Data: tfds binarized_mnist (prepare it once: `tfds build binarized_mnist --file_format=array_record`).
Hardware: needs an accelerator for the full 10^6 steps; on a 2-core CPU only `:tiny` has been run (in
  the test suite, under tfds.testing.mock_data).
Our result: not measured (no binarized MNIST offline here).
Paper: Kingma & Welling report the lower bound only as training curves (their Fig. 2), not as a table;
  the closest tabulated number is Burda et al. (2015) Table 1, a one-layer VAE (k=1): 86.76 nats
  (IWAE-5000) with their 200-200 architecture (binarized_mnist_iwae.py).
"""

from gm_jax.tasks import with_tiny_size
from gm_jax.tasks.vae import default_config


@with_tiny_size
def get_config():
  config = default_config()
  config.data.update(name="binarized_mnist", batch_size=100)
  config.model.update(latent_dims=(20,), hidden=((500,),), decoder="bernoulli")
  config.optim.update(name="adagrad", learning_rate=0.02, initial_accumulator=0.0)
  config.train.update(num_steps=1_000_000, log_every=1000, eval_every=100_000, sample_every=50_000,
                      checkpoint_every=10_000)
  config.eval.batch_size = 100
  return config
