"""VDM's learned schedule: it runs from its learned endpoints, increases everywhere, and the 'network'
interior follows its parameters, starting nearly linear whatever the seed, as VDM's does (it started at a
random shape)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.models.noise_schedule import LearnedGamma


@pytest.mark.parametrize("kind", ["endpoints", "network"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_schedule_runs_between_its_endpoints_and_increases(kind, seed):
  schedule = LearnedGamma(-13.3, 5.0, kind, hidden=64)
  t = jnp.linspace(0.0, 1.0, 1001)
  params = schedule.init(jax.random.key(seed), t)["params"]
  if kind == "network":  # some other parameters, as training would move them to
    params = jax.tree.map(lambda p: p + jax.random.normal(jax.random.key(seed + 10), p.shape), params)
  params = {**params, "gamma_0": jnp.float32(-10.0), "gamma_1": jnp.float32(7.0)}
  gamma = np.asarray(schedule.apply({"params": params}, t))
  np.testing.assert_allclose(gamma[[0, -1]], [-10.0, 7.0], atol=1e-5)
  assert np.all(np.diff(gamma) > 0)
  bend = np.max(np.abs(gamma - (-10.0 + 17.0 * np.asarray(t))))
  assert bend > 0.05 if kind == "network" else bend < 1e-4  # the network's interior is its own, not the line


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_network_schedule_starts_nearly_linear(seed):
  schedule = LearnedGamma(-13.3, 5.0, "network")
  t = jnp.linspace(0.0, 1.0, 101)
  gamma = np.asarray(schedule.apply(schedule.init(jax.random.key(seed), t), t))
  linear = -13.3 + 18.3 * np.asarray(t)
  assert np.max(np.abs(gamma - linear)) < 0.05 * 18.3
