r"""VAE (one Gaussian stochastic layer) on scikit-learn digits, trained by the ELBO.

q(z|x) and p(x|z) are tanh MLPs (100-100), z has 16 dimensions, and p(x|z) is a discretized logistic
over the 17 grey levels, so the reported likelihood is a true discrete one. Evaluated on the 300 test
digits with IWAE-5000 (nll_nats, bpd) and the ELBO (elbo_nll_nats).

Command:
  python experiments/main.py --config=experiments/configs/digits_vae.py --workdir=/tmp/gm_jax/digits_vae
Hardware: 2-core CPU, no accelerator.
Our result (jax 0.10.2, 22 s): test nll_nats 83.47 = 1.882 bits/dim (IWAE-5000, one key per
  sample; 83.46 = 1.881 when each chunk of samples shared a key); -ELBO 87.27 nats (1.967 bits/dim;
  recon -71.58, KL 15.69).
Sample quality (the digits report, judged by the shipped digits classifier, data floor 39.7;
  docs/BASELINES.md, "Digits across families"): FD-digits 197.7, KID 395.1, precision 0.823, recall
  0.950, density 0.472, coverage 0.833, IS 8.57.
Paper: none on digits (scikit-learn's 8x8 digits have no published VAE likelihood); the comparison is
  the other digits rows of docs/BASELINES.md.
"""

from gm_jax.tasks import with_tiny_size
from gm_jax.tasks.vae import default_config


@with_tiny_size
def get_config():
  config = default_config()
  config.data.update(name="digits", batch_size=100)
  config.model.update(hidden=((100, 100),), decoder="discretized_logistic")
  config.train.update(num_steps=3000, eval_every=1000, sample_every=1000)
  config.eval.batch_size = 100
  return config
