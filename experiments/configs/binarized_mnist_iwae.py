r"""Burda, Grosse & Salakhutdinov (2015), "Importance Weighted Autoencoders": VAE and IWAE on binarized MNIST.

The published setting: MNIST binarized afresh each time an image is used (each pixel white with
probability its intensity; the authors' code, whose README says the fixed binarization of Larochelle &
Murray overfits and ends about 2 nats worse); Bernoulli decoder; tanh MLPs; architecture 1 = one
stochastic layer (784-200-200-z50, mirrored decoder), architecture 2 = two stochastic layers
(784-200-200-z1(100)-100-100-z2(50), mirrored); the VAE's gradient averages k samples of the ELBO, the
IWAE's uses the k-sample bound; Adam (beta1 0.9, beta2 0.999, eps 1e-4), batch 20, for 3^i epochs at
learning rate 1e-3 * 10^(-i/7), i = 0..7 (3,280 epochs); test log-likelihood by IWAE with k = 5000.
Differences: all 60,000 training images (the authors held 400 out for validation); the test images'
binarization is fixed per image (drawn once from a fixed key).

Select the variant with the config argument (comma-separated): layers=1|2, k=1|5|50, objective=vae|iwae,
and `tiny` for the smoke size:
  python experiments/main.py \
      --config=experiments/configs/binarized_mnist_iwae.py:layers=2,k=50,objective=iwae \
      --workdir=/tmp/gm_jax/bmnist_iwae_2l_k50
Data: tfds mnist (prepare it once: `tfds build mnist --file_format=array_record`), binarized by
  data.binarize.
Hardware: the published run needs an accelerator (9.84M steps at batch 20); on a 2-core CPU only the
  `tiny` variant has been run (in the test suite, under tfds.testing.mock_data).
Our result: not measured (no binarized MNIST offline here).
Paper (Table 1, test NLL in nats, IWAE-5000): 1 layer: VAE k=1 86.76, IWAE k=50 84.78;
  2 layers: VAE k=1 85.33, IWAE k=50 82.90.
"""

from gm_jax.tasks import with_tiny_size
from gm_jax.tasks.vae import default_config

STEPS_PER_EPOCH = 60_000 // 20  # tfds mnist: 60,000 training images


def parse_arg(arg: str | None) -> dict:
  options = {"layers": "1", "k": "1", "objective": "vae"}
  for item in filter(None, (arg or "").split(",")):
    key, _, value = item.partition("=")
    if key not in options or not value:
      raise ValueError(f"unknown config argument {item!r}; use layers=1|2, k=1|5|50, objective=vae|iwae")
    options[key] = value
  return options


@with_tiny_size
def get_config(arg: str | None = None):
  options = parse_arg(arg)
  config = default_config()
  config.data.update(name="mnist", binarize=True, batch_size=20)
  config.model.decoder = "bernoulli"
  if options["layers"] == "1":
    config.model.update(latent_dims=(50,), hidden=((200, 200),))
  elif options["layers"] == "2":
    config.model.update(latent_dims=(100, 50), hidden=((200, 200), (100, 100)))
  else:
    raise ValueError("layers must be 1 or 2")
  config.objective.update(name={"vae": "elbo", "iwae": "iwae"}[options["objective"]],
                          num_samples=int(options["k"]))

  config.optim.update(eps=1e-4, schedule="piecewise")
  epochs_done = [sum(3**j for j in range(i + 1)) for i in range(7)]  # 1, 4, 13, ..., 1093
  config.optim.update(boundaries=tuple(e * STEPS_PER_EPOCH for e in epochs_done),
                      scales=tuple(10 ** (-i / 7) for i in range(8)))
  config.train.num_steps = sum(3**i for i in range(8)) * STEPS_PER_EPOCH  # 3,280 epochs
  config.train.update(log_every=1000, eval_every=500 * STEPS_PER_EPOCH, sample_every=100 * STEPS_PER_EPOCH,
                      checkpoint_every=20 * STEPS_PER_EPOCH)
  config.eval.batch_size = 100
  return config
