"""The nsf / maf / iaf architectures as whole flows: they invert, their log-det is slogdet of the
Jacobian, and a 2-D flow's density integrates to 1."""

import jax
import numpy as np
import pytest

from gm_jax.models import bijectors as bj
from gm_jax.models.flows import Flow, FlowConfig
from tests.models.test_bijectors import _check, _perturbed


@pytest.mark.parametrize("arch,shape,transform", [("maf", (4,), "spline"), ("iaf", (4,), "affine"),
                                                  ("nsf", (4, 4, 1), "affine")])
def test_composed_flow_inverts_and_log_det_matches_jacobian(arch, shape, transform):
  cfg = FlowConfig(arch, shape, hidden=(8, 8), num_levels=2 if len(shape) == 3 else 1, steps_per_level=2,
                   preprocess="logit" if len(shape) == 3 else "none", transform=transform, num_bins=4)
  flow = Flow(cfg)
  x = jax.random.uniform(jax.random.key(3), (2, *shape), minval=0.05, maxval=0.95)
  variables = _perturbed(jax.jit(flow.init)(jax.random.key(0), x), jax.random.key(2), scale=0.1)

  class Wrapped:
    def apply(self, _, v, inverse=False):
      return flow.apply(variables, v, method=lambda m, a: m.bijector(a, inverse))

  # Images pass the logit and two levels of splines: float32 round trips to ~2e-5 there.
  _check(Wrapped(), x, None, atol=1e-5 if len(shape) == 1 else 5e-5)
  if len(shape) == 1:  # each step is triangular in its order; the next step's reversed order fills the other
    forward = lambda v: Wrapped().apply(None, v[None])[0][0]
    depends = np.any(np.asarray(jax.jit(jax.vmap(jax.jacobian(forward)))(x)) != 0, axis=0)
    assert depends[np.triu_indices(4, 1)].any() and depends[np.tril_indices(4, -1)].any()


@pytest.mark.parametrize("arch", ["nsf", "maf"])
def test_2d_density_integrates_to_one(arch):
  flow = Flow(FlowConfig(arch, (2,), hidden=(16, 16), steps_per_level=2, transform="spline", num_bins=4))
  x0 = jax.random.normal(jax.random.key(0), (256, 2))
  variables = _perturbed(flow.init(jax.random.key(0), x0), jax.random.key(1), scale=0.15)
  h = 0.025
  g = np.arange(-8, 8, h, dtype=np.float32) + h / 2
  pts = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
  log_p = jax.jit(lambda x: flow.apply(variables, x))
  total = sum(float(np.sum(np.exp(np.asarray(log_p(c), np.float64)))) for c in np.array_split(pts, 4))
  assert total * h * h == pytest.approx(1.0, abs=0.01)


def test_coupling_scale_init_sets_the_log_scale_bound():
  layer = bj.Coupling(bj.checkerboard_mask((2,), 0), bj.MLPConditioner((4,), 2), scale_init=3.0)
  variables = layer.init(jax.random.key(0), np.zeros((1, 2), np.float32))
  np.testing.assert_array_equal(variables["params"]["scale"], 3.0)


@pytest.mark.parametrize("arch", ["nice", "realnvp", "glow", "nsf"])
def test_conditioner_bias_init_spreads_the_hidden_biases_of_vector_flows(arch):
  """uniform: every hidden layer's biases drawn from U(-1/sqrt(fan_in), 1/sqrt(fan_in)); zeros: Flax's.
  Nothing else moves (same kernels, last layers still zero)."""
  x = np.zeros((1, 2), np.float32)
  init = lambda bias_init: jax.tree_util.tree_flatten_with_path(Flow(FlowConfig(
      arch, (2,), hidden=(64, 32), steps_per_level=4, scan_steps=arch in ("nice", "realnvp"),
      conditioner_bias_init=bias_init)).init(jax.random.key(0), x))[0]
  hidden = lambda path: "Dense_0" in str(path) or "Dense_1" in str(path)
  spread = [(path, np.asarray(a)) for path, a in init("uniform") if hidden(path) and "bias" in str(path)]
  assert len(spread) == 2 * (2 if arch in ("nice", "realnvp") else 4)  # scanned in pairs: stacked
  for path, bias in spread:
    bound = 1 / np.sqrt(2 if "Dense_0" in str(path) else 64)
    assert np.abs(bias).max() <= bound and np.std(bias) == pytest.approx(bound / np.sqrt(3), rel=0.3)
  for (path, a), (_, b) in zip(init("zeros"), init("uniform")):
    if hidden(path) and "bias" in str(path):
      np.testing.assert_array_equal(a, 0)
    else:
      np.testing.assert_array_equal(a, b)
