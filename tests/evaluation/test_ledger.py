"""The likelihood ledger's units and the exact (sum, count) averaging of metrics."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.evaluation import ledger, metrics


def test_bits_per_dim_and_the_ledger_entry():
  assert ledger.bits_per_dim(2.0 * math.log(2.0) * 7, 7) == pytest.approx(2.0, rel=1e-15)
  assert ledger.likelihood_entry(5.5, 4, "iwae_5000", discrete=True) == {
      "nll_nats": 5.5, "estimator": "iwae_5000", "bpd": pytest.approx(5.5 / (4 * math.log(2.0)), rel=1e-15)}
  assert ledger.likelihood_entry(-1.25, 2, "exact", discrete=False) == {
      "nll_nats": -1.25, "estimator": "exact"}


@pytest.mark.parametrize("estimator", ["exact", "elbo", "vlb", "ode", "iwae_1", "iwae_5000"])
def test_known_estimators(estimator):
  assert ledger.check_estimator(estimator) == estimator


@pytest.mark.parametrize("estimator", ["iwae_", "iwae_k", "iwae", "nll", "ELBO", "iwae_0", "iwae_²"])
def test_unknown_estimators_are_rejected(estimator):
  with pytest.raises(ValueError, match=f"unknown likelihood estimator {estimator!r}"):
    ledger.check_estimator(estimator)


def test_metrics_average_exactly_over_batches():
  """Two batches of sizes 3 and 1: the mean is over the 4 examples, not the mean of the 2 batch means."""
  first = {"nll": metrics.masked_mean(jnp.array([1.0, 2.0, 3.0, 100.0]), jnp.array([1.0, 1.0, 1.0, 0.0])),
           "loss": metrics.scalar(jnp.float32(0.5))}
  second = {"nll": metrics.masked_mean(jnp.array([10.0, jnp.nan]), jnp.array([1.0, 0.0])),  # a failed pad
            "loss": metrics.scalar(jnp.float32(1.5))}
  summed = metrics.add(first, second)
  np.testing.assert_allclose([summed["nll"][0], summed["nll"][1]], [16.0, 4.0])
  acc = metrics.Accumulator()
  acc.add(first)
  acc.add(second)
  assert acc.means() == {"nll": 4.0, "loss": 1.0}
  # Float64 sums on the host: 10^8 + 1 is kept, which float32 loses.
  acc.reset()
  acc.add({"big": (np.float32(1e8), np.float32(1.0))})
  acc.add({"big": (np.float32(1.0), np.float32(1.0))})
  assert acc.means() == {"big": (1e8 + 1.0) / 2}


def test_the_toy2d_data_floor_reads_the_test_split_in_blocks(monkeypatch):
  # In one call a 100,000-point test split of the moons took 1.6 GB (each point meets 2,000 curve nodes).
  from gm_jax import data as data_lib
  from gm_jax.data import toy2d
  from tests.conftest import load_config

  data_config = load_config("toy2d_gmm", "tiny").data
  data_config.update(distribution="moons", num_test=6000)
  data_config.geometry = {}
  dataset = data_lib.load_toy2d(data_config)
  dist = dataset.spec.extras["distribution"]
  whole_split = -np.mean(np.asarray(dist.log_prob(dataset.test[np.arange(6000)]["x"]), np.float64))
  points_per_call, log_prob = [], type(dist).log_prob
  monkeypatch.setattr(type(dist), "log_prob",
                      lambda self, x: points_per_call.append(len(x)) or log_prob(self, x))
  # The entropy's own draws are not this test's.
  monkeypatch.setattr(toy2d, "entropy", lambda *args: toy2d.Entropy(0.0, 0.0, "monte_carlo"))
  floor = ledger.data_floor(dataset, seed=0)
  assert points_per_call and max(points_per_call) <= 2500
  assert floor["data_nll_nats"] == pytest.approx(whole_split, rel=1e-6)


@pytest.mark.parametrize("size,draws", [(None, 1_000_000), ("tiny", 20_000)])
def test_the_toy2d_entropy_floor_takes_data_entropy_samples_draws(size, draws, monkeypatch):
  # A :tiny run's floor within about 0.01 nats: its million draws took most of a smoke test's time.
  from gm_jax import data as data_lib
  from gm_jax.data import toy2d
  from tests.conftest import load_config

  dataset = data_lib.load_toy2d(load_config("toy2d_gmm", size).data)
  asked = []
  monkeypatch.setattr(toy2d, "entropy", lambda dist, key, num_samples: asked.append(num_samples) or
                      toy2d.Entropy(0.0, 0.0, "monte_carlo"))
  ledger.data_floor(dataset, seed=0)
  assert asked == [draws]
