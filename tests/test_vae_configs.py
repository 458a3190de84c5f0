"""VAE configs: the published IWAE schedule, per-layer KLs, the Bernoulli decoder's binarization and the
KL weight (tests/test_configs.py trains every config)."""

import json

import numpy as np
import pytest

from gm_jax import data as data_lib
from gm_jax import tasks
from gm_jax.evaluation import quality_report
from tests.conftest import load_config

def _train(config, workdir):
  config.train.progress_bar = False
  return tasks.train(config, str(workdir))


def test_hierarchical_vae_reports_each_layers_kl(tmp_path):
  _train(load_config("digits_hvae", "tiny"), tmp_path)
  test = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()][-1]
  assert test["kl"] == pytest.approx(test["kl1"] + test["kl2"], rel=1e-5)
  # Each layer's KL is a divergence, so its mean over the test digits is positive (a sign error in one
  # layer's term, or a layer's term scaled, would still add up to the reported total above).
  assert test["kl1"] > 1.0 and test["kl2"] > 1.0, test
  assert test["elbo"] == pytest.approx(test["recon"] - test["kl"], rel=1e-5)


def test_paper_config_published_schedule():
  config = load_config("binarized_mnist_iwae", "layers=2,k=50,objective=iwae")
  assert config.train.num_steps == 3280 * 3000
  # Burda et al.: 8 stages of 3^i epochs (3,000 steps of 20 each), stage i at 10^(-i/7) of the first rate.
  assert config.optim.boundaries == tuple(e * 3000 for e in (1, 4, 13, 40, 121, 364, 1093))
  np.testing.assert_allclose(config.optim.scales, [10 ** (-i / 7) for i in range(8)], rtol=1e-12)
  # The authors' code: dynamically binarized MNIST, and 200-unit layers to z1, 100-unit layers to z2.
  assert (config.data.name, config.data.binarize) == ("mnist", True)
  assert config.model.hidden == ((200, 200), (100, 100))
  assert config.model.latent_dims == (100, 50) and config.objective.num_samples == 50
  with pytest.raises(ValueError, match="unknown config argument"):
    load_config("binarized_mnist_iwae", "layer=2")


def test_bernoulli_on_grey_levels_needs_binarize(tmp_path):
  config = load_config("digits_vae", "tiny")
  config.model.decoder = "bernoulli"
  with pytest.raises(ValueError, match="data.binarize=True"):
    _train(config, tmp_path)
  assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("decoder", ["bernoulli", "discretized_logistic", "gaussian"])
def test_samples_are_judged_at_the_levels_of_the_real_digits_they_meet(decoder, tmp_path, monkeypatch):
  """A Bernoulli decoder's samples are black and white: they are judged against real digits binarized as
  the decoder sees them (each pixel white with probability level / 16), not against grey digits whose
  floor no binary image can reach (FD-digits 39.7 against 106 for the binarized training digits). An
  autoencoder's Gaussian decoder draws reals in level units: they are judged at the nearest of the 17
  levels (they were judged raw, -4.6 to 9.8 for a new network, beside integer real digits)."""
  binarized = decoder == "bernoulli"
  seen = {}

  def capture(space, samples, reference, floor, **settings):
    seen.update(samples=samples, reference=reference, floor=floor)
    return real_report(space, samples, reference, floor, **settings)

  real_report = quality_report.report
  monkeypatch.setattr(quality_report, "report", capture)
  config = load_config("digits_autoencoder" if decoder == "gaussian" else "digits_vae", "tiny")
  config.model.decoder, config.data.binarize = decoder, binarized
  _train(config, tmp_path)
  levels = {name: set(np.unique(np.asarray(x)).tolist()) for name, x in seen.items()}
  if binarized:
    assert levels == {"samples": {0.0, 16.0}, "reference": {0.0, 16.0}, "floor": {0.0, 16.0}}
  else:
    assert len(levels["reference"]) == len(levels["floor"]) == 17  # the grey digits as they are
    assert levels["samples"] <= set(range(17))
  # White pixels as often as the grey levels say: a binarization, not a threshold.
  test = data_lib.load_dataset(load_config("digits_vae", "tiny").data).test
  assert np.mean(seen["reference"]) == pytest.approx(np.mean(test[np.arange(len(test))]["x"]), rel=0.05)


def test_binarized_test_images_are_one_draw_whatever_the_runs_seed():
  """Runs of other seeds are scored on the same binarized test digits: the evaluation's binarization
  does not come from the run's key (the pictures show the test images beside their deterministic
  reconstructions; the ELBO's latent noise is the run's own)."""
  import jax

  config = load_config("digits_vae", "tiny")
  config.model.decoder, config.data.binarize = "bernoulli", True
  dataset = data_lib.load_dataset(config.data)
  task = tasks.build(config, dataset)
  batch = dataset.test[np.arange(64)] | {"mask": np.ones(64, np.float32), "index": np.arange(64)}
  batch["label"] = batch.get("label", np.zeros(64, np.int32))
  params = {"model": task.init(jax.random.key(0), batch)["model"]["params"]}
  seen = [np.asarray(task.pictures_fn(params, {}, jax.random.key(seed), batch)["reconstructions"])
          for seed in (0, 1)]
  np.testing.assert_array_equal(seen[0], seen[1])
  assert set(np.unique(seen[0][:16]).tolist()) == {0.0, 16.0}  # binarized test digits, white and black
  elbo = [float(task.eval_fn(params, {}, batch, jax.random.key(seed))["elbo"][0]) for seed in (0, 1)]
  assert elbo[0] != elbo[1]  # the latents' noise does follow the key


def test_a_likelihood_of_binarized_grey_levels_says_so_and_a_gaussian_decoder_on_images_is_refused():
  from gm_jax.evaluation import ledger

  config = load_config("digits_vae", "tiny")
  config.model.decoder, config.data.binarize = "bernoulli", True
  likelihood = tasks.build(config, data_lib.load_dataset(config.data)).likelihood
  # Bits per dimension of random 0/1 images, not of the 17-level digits other families report.
  assert likelihood.likelihood_of == "binarized data"
  entry = ledger.likelihood_entry(100.0, 64, likelihood.estimator, likelihood.discrete,
                                  likelihood.likelihood_of)
  assert entry["likelihood_of"] == "binarized data"
  assert "likelihood_of" not in ledger.likelihood_entry(100.0, 64, "exact", True)
  config = load_config("digits_vae", "tiny")
  config.model.decoder = "gaussian"  # a density at the integer levels is no likelihood of the images
  with pytest.raises(ValueError, match="model.decoder='gaussian' models continuous data; 'digits' has "
                                       "integer-level images"):
    tasks.build(config, data_lib.load_dataset(config.data))


@pytest.mark.parametrize("beta", [0.0, 1.0, 4.0])
def test_beta_weights_the_kl_in_the_loss(beta, tmp_path):
  config = load_config("digits_vae", "tiny")
  config.objective.beta = beta
  config.train.num_steps = 10
  _train(config, tmp_path)
  first = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
  assert first["loss"] == pytest.approx(-first["recon"] + beta * first["kl"], rel=1e-5)
