"""Flow densities: a 2-D flow integrates to 1; the bits/dim of an identity flow on uniformly dequantized
data equals its closed form."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.evaluation import ledger
from gm_jax.models.flows import DequantizedFlow, Flow, FlowConfig
from tests.models.test_bijectors import _perturbed


@pytest.mark.parametrize("arch", ["nice", "realnvp", "glow"])
def test_2d_flow_density_integrates_to_one(arch):
  flow = Flow(FlowConfig(arch, (2,), hidden=(16, 16), steps_per_level=4, base="learned"))
  x0 = jax.random.normal(jax.random.key(0), (256, 2))
  variables = _perturbed(flow.init(jax.random.key(0), x0), jax.random.key(1), scale=0.15)
  h = 0.02
  g = np.arange(-10, 10, h, dtype=np.float32) + h / 2
  pts = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
  log_p = jax.jit(lambda x: flow.apply(variables, x))
  total = sum(float(np.sum(np.exp(np.asarray(log_p(c), np.float64)))) for c in np.array_split(pts, 10))
  assert total * h * h == pytest.approx(1.0, abs=0.01)


def test_identity_flow_bits_per_dim_closed_form():
  """Identity flow, N(0, 1) base, y = (k + u) / L: E[-log P] = D/2 log 2 pi + sum E[y^2]/2 + D log L,
  E[y^2] = (k^2 + k + 1/3) / L^2."""
  levels, shape = 17, (2, 2, 1)
  model = DequantizedFlow(FlowConfig("realnvp", shape, steps_per_level=0), levels)
  k = jnp.array([[[[0], [5]], [[16], [9]]]])
  keys = jax.random.split(jax.random.key(0), 200_000)
  variables = model.init(jax.random.key(0), k, keys[:1])
  assert not jax.tree.leaves(variables)  # nothing to learn: the identity
  bound = jax.jit(lambda kk: model.apply(variables, jnp.repeat(k, kk.shape[0], 0), kk))(keys)
  d = 4
  kf = np.asarray(k, np.float64).reshape(-1)
  expected_nll = d / 2 * math.log(2 * math.pi) + np.sum((kf**2 + kf + 1 / 3) / levels**2) / 2 + d * math.log(levels)
  nll = -float(np.mean(np.asarray(bound, np.float64)))
  assert nll == pytest.approx(expected_nll, rel=2e-4)
  entry = ledger.likelihood_entry(nll, d, "elbo", discrete=True)
  assert entry["bpd"] == pytest.approx(expected_nll / (d * math.log(2)), rel=2e-4)
  assert entry["bpd"] > 0


def test_sampling_temperature_scales_the_base():
  flow = Flow(FlowConfig("realnvp", (2,), steps_per_level=0))
  variables = flow.init(jax.random.key(0), jnp.zeros((1, 2)))
  cold = flow.apply(variables, jax.random.key(1), 20000, 0.5, method=Flow.sample)
  assert float(jnp.std(cold)) == pytest.approx(0.5, rel=0.03)


def test_sampled_levels_are_valid():
  model = DequantizedFlow(FlowConfig("glow", (4, 4, 1), hidden=(8,), num_levels=2, steps_per_level=1,
                                     preprocess="shift"), 17, "variational", (8,), 2)
  x = jax.random.randint(jax.random.key(0), (3, 4, 4, 1), 0, 17)
  variables = model.init(jax.random.key(1), x, jax.random.split(jax.random.key(2), 3))
  s = model.apply(variables, jax.random.key(3), 5, method=DequantizedFlow.sample)
  assert s.shape == (5, 4, 4, 1) and int(s.min()) >= 0 and int(s.max()) <= 16
