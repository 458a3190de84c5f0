"""Flow densities: a 2-D flow integrates to 1; the bits/dim of an identity flow on uniformly dequantized
data equals its closed form."""

import math
import re

import chex
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


@pytest.mark.parametrize("shape", [(4,), (4, 4, 1)])
def test_nice_changes_volume_only_by_its_scaling(shape):
  """Additive couplings keep volume; NICE's last layer (a diagonal scaling) is what lets it fit a scale."""
  flow = Flow(FlowConfig("nice", shape, hidden=(8,), num_levels=len(shape) - 1 or 1, steps_per_level=2))
  x = jax.random.normal(jax.random.key(0), (3, *shape))
  variables = _perturbed(jax.jit(flow.init)(jax.random.key(1), x), jax.random.key(2), scale=0.1)
  forward = lambda a: flow.apply(variables, a, method=lambda m, a: m.bijector(a))
  log_det = np.asarray(jax.jit(forward)(x)[1])
  # The same change of volume at every point, and not none: the scaling's, whatever the couplings do.
  np.testing.assert_allclose(log_det, log_det[0], atol=1e-5)
  assert abs(log_det[0]) > 1e-3
  d = math.prod(shape)
  jacobians = jax.jit(jax.vmap(jax.jacobian(lambda a: forward(a[None])[0].reshape(-1))))(x).reshape(-1, d, d)
  for jacobian in jacobians:
    assert float(jnp.linalg.slogdet(jacobian)[1]) == pytest.approx(log_det[0], abs=1e-4)


def test_identity_flow_bits_per_dim_closed_form():
  """Identity flow, N(0, 1) base, y = (k + u) / L with independent u ~ U[0, 1) per dimension:
  -log P = D/2 log 2 pi + D log L + q with q = sum_d y_d^2 / 2, whose mean and variance follow from
  E[(k + u)^n] = ((k + 1)^(n + 1) - k^(n + 1)) / (n + 1). The variance tells the noise apart from a fixed
  offset (bin centres) or one u shared by all dimensions, which the mean alone would not."""
  levels, shape = 17, (2, 2, 1)
  model = DequantizedFlow(FlowConfig("realnvp", shape, steps_per_level=0), levels)
  k = jnp.array([[[[0], [5]], [[16], [9]]]])
  n = 200_000
  keys = jax.random.split(jax.random.key(0), n)
  variables = model.init(jax.random.key(0), k, keys[:1])
  assert not jax.tree.leaves(variables)  # nothing to learn: the identity
  bound = jax.jit(lambda kk: model.apply(variables, jnp.repeat(k, kk.shape[0], 0), kk))(keys)
  d = 4
  kf = np.asarray(k, np.float64).reshape(-1)
  moment = lambda p: ((kf + 1) ** (p + 1) - kf ** (p + 1)) / (p + 1)  # E[(k + u)^p] per dimension
  q_mean = np.sum(moment(2)) / (2 * levels**2)
  q_var = np.sum(moment(4) - moment(2) ** 2) / (4 * levels**4)
  constants = d / 2 * math.log(2 * math.pi) + d * math.log(levels)
  q = -np.asarray(bound, np.float64) - constants
  assert float(np.mean(q)) == pytest.approx(q_mean, abs=5 * math.sqrt(q_var / n))
  assert float(np.var(q)) == pytest.approx(q_var, rel=0.03)
  expected_nll = constants + q_mean
  nll = -float(np.mean(np.asarray(bound, np.float64)))
  entry = ledger.likelihood_entry(nll, d, "elbo", discrete=True)
  assert entry["bpd"] == pytest.approx(expected_nll / (d * math.log(2)), rel=1e-5)
  assert entry["bpd"] > 0


def test_sampling_temperature_scales_the_base():
  """Samples at temperature T, mapped back to the base by the flow's forward pass, are N(mean, (T std)^2) of
  its learned base (with couplings far from the identity, a temperature applied to x would show)."""
  flow = Flow(FlowConfig("realnvp", (2,), hidden=(8,), steps_per_level=4, base="learned"))
  variables = _perturbed(flow.init(jax.random.key(0), jnp.zeros((1, 2))), jax.random.key(2), scale=0.3)
  cold = flow.apply(variables, jax.random.key(1), 20000, 0.5, method=Flow.sample)
  z = np.asarray(flow.apply(variables, cold, method=lambda m, x: m.bijector(x)[0]), np.float64)
  mean, log_std = (np.asarray(a, np.float64) for a in flow.apply(variables, method=lambda m: m._base()))
  np.testing.assert_allclose(z.mean(0), mean, atol=0.03)
  np.testing.assert_allclose(z.std(0), 0.5 * np.exp(log_std), rtol=0.03)
  assert np.min(np.abs(np.std(np.asarray(cold), 0) / np.exp(log_std) - 0.5)) > 0.05  # not the same in x


def test_sampled_levels_are_the_bins_of_finite_flow_samples():
  model = DequantizedFlow(FlowConfig("glow", (4, 4, 1), hidden=(8,), num_levels=2, steps_per_level=1,
                                     preprocess="shift"), 17, "variational", (8,), 2)
  x = jax.random.randint(jax.random.key(0), (3, 4, 4, 1), 0, 17)
  variables = jax.jit(model.init)(jax.random.key(1), x, jax.random.split(jax.random.key(2), 3))
  sample = lambda v: model.apply(v, jax.random.key(3), 5, 1.0, True, method=DequantizedFlow.sample)
  levels, y = jax.jit(sample)(variables)
  assert levels.shape == (5, 4, 4, 1) and np.all(np.isfinite(np.asarray(y)))  # NaN would cast to level 0
  np.testing.assert_array_equal(levels, np.clip(np.floor(np.asarray(y) * 17), 0, 16))


def test_variational_bound_is_the_flow_density_less_log_q_by_the_change_of_variables():
  """bound = log p_flow((k + u) / L) - log q(u | k) - D log L with u = g(eps; k), eps ~ N(0, I) as the
  dequantizer draws it and log q = log N(eps) - log|det du/deps| from jax.jacobian of the dequantizer."""
  levels, shape = 17, (2, 2, 1)
  model = DequantizedFlow(FlowConfig("realnvp", shape, hidden=(8,), steps_per_level=2), levels,
                          "variational", (8,), 2)
  k = jax.random.randint(jax.random.key(0), (3, *shape), 0, levels)
  keys = jax.random.split(jax.random.key(2), 3)
  variables = _perturbed(jax.jit(model.init)(jax.random.key(1), k, keys), jax.random.key(3), scale=0.3)
  bound = np.asarray(jax.jit(model.apply)(variables, k, keys), np.float64)
  condition = k.astype(jnp.float32) / (levels - 1)
  to_u = lambda eps, c: model.apply(variables, eps[None], c[None],
                                    method=lambda m, e, c: m.dequantizer.flow(e, False, c)[0])[0]
  log_p = lambda y: model.apply(variables, y, method=lambda m, y: m.flow(y))
  for i in range(3):
    eps = jax.random.normal(keys[i], shape)
    u = to_u(eps, condition[i])
    jacobian = jax.jacobian(lambda e: to_u(e.reshape(shape), condition[i]).reshape(-1))(eps.reshape(-1))
    log_q = (np.sum(-0.5 * np.asarray(eps, np.float64) ** 2 - 0.5 * math.log(2 * math.pi))
             - np.linalg.slogdet(np.asarray(jacobian, np.float64))[1])
    assert abs(log_q) > 0.5  # q far from uniform, so a missing term would show
    expected = float(log_p(((k[i] + u) / levels)[None])[0]) - log_q - 4 * math.log(levels)
    assert bound[i] == pytest.approx(expected, abs=1e-3)


def _scanned_layout(level: dict, steps: int) -> dict:
  """An unrolled Glow/NSF level's parameters (Chain layers: squeeze, then norm, 1x1 conv, coupling per
  step, then the factored-out level) in the layout of the same level with scan_steps."""
  per_step = [{"norm": level[f"layers_{3 * i + 1}"], "linear": level[f"layers_{3 * i + 2}"],
               "coupling": level[f"layers_{3 * i + 3}"]} for i in range(steps)]
  out = {"layers_1": {"steps": jax.tree.map(lambda *a: jnp.stack(a), *per_step)}}
  if f"layers_{3 * steps + 1}" in level:
    out["layers_2"] = {"inner": _scanned_layout(level[f"layers_{3 * steps + 1}"]["inner"], steps)}
  return out


@pytest.mark.parametrize("arch", ["glow", "nsf"])
def test_scanned_steps_are_the_unrolled_flow(arch):
  size = dict(x_shape=(8, 8, 3), hidden=(8,), num_levels=2, steps_per_level=3, preprocess="shift",
              conditioner="glow")
  unrolled, scanned = Flow(FlowConfig(arch, **size)), Flow(FlowConfig(arch, **size, scan_steps=True))
  x = jax.random.uniform(jax.random.key(0), (4, 8, 8, 3))
  init, scanned_init = (jax.jit(flow.init)(jax.random.key(1), x) for flow in (unrolled, scanned))
  restack = lambda v: {"params": {"bijector": {
      "layers_1": _scanned_layout(v["params"]["bijector"]["layers_1"], 3)}}}
  # The same data-dependent ActNorm and the same starting rotation in each step's 1x1 convolution (the
  # couplings start as the identity; their conditioners' random draws differ).
  levels = lambda v: [v["layers_1"]["steps"]] + (levels(v["layers_2"]["inner"]) if "layers_2" in v else [])
  first_level = lambda v: v["params"]["bijector"]["layers_1"]
  for mine, theirs in zip(levels(first_level(scanned_init)), levels(first_level(restack(init)))):
    chex.assert_trees_all_close((mine["norm"], mine["linear"]), (theirs["norm"], theirs["linear"]),
                                rtol=1e-6, atol=1e-6)
  variables = _perturbed(init, jax.random.key(2), scale=0.1)
  np.testing.assert_allclose(jax.jit(scanned.apply)(restack(variables), x),
                             jax.jit(unrolled.apply)(variables, x), rtol=1e-5, atol=1e-4)
  sample = lambda flow, v: jax.jit(lambda v: flow.apply(v, jax.random.key(3), 4, method=Flow.sample))(v)
  # Inverting the splines amplifies float32 rounding (values of order 1 agree to ~1e-4); a step out of
  # order would be off by order 1.
  np.testing.assert_allclose(sample(scanned, restack(variables)), sample(unrolled, variables),
                             rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("arch, levels", [("realnvp", 2), ("nice", 2), ("realnvp", 1)])
def test_scanned_coupling_pairs_are_the_unrolled_flow(arch, levels):
  size = dict(x_shape=(3,), hidden=(8, 8), steps_per_level=3, num_levels=levels, coupling_scale_init=2.0)
  unrolled, scanned = Flow(FlowConfig(arch, **size)), Flow(FlowConfig(arch, **size, scan_steps=True))
  x = jax.random.normal(jax.random.key(0), (5, 3))
  variables = _perturbed(jax.jit(unrolled.init)(jax.random.key(1), x), jax.random.key(2), scale=0.3)
  count = 3 * levels  # couplings; NICE's final scaling follows them
  layers = [variables["params"]["bijector"][f"layers_{i}"] for i in range(count + (arch == "nice"))]
  stack = lambda parity: jax.tree.map(lambda *a: jnp.stack(a), *layers[parity:count - count % 2:2])
  # Scanned: the pairs, then an odd count's last coupling, then NICE's scaling.
  rest = layers[count - count % 2:]
  restacked = {"params": {"bijector": {"layers_0": {"pairs": {"first": stack(0), "second": stack(1)}}}
                          | {f"layers_{i + 1}": layer for i, layer in enumerate(rest)}}}
  scanned_init = jax.jit(scanned.init)(jax.random.key(1), x)
  chex.assert_trees_all_equal_shapes(restacked, scanned_init)
  first_couplings = scanned_init["params"]["bijector"]["layers_0"]["pairs"]["first"]
  kernels = first_couplings["conditioner"]["Dense_0"]["kernel"]
  assert len(kernels) == 1 or not np.allclose(kernels[0], kernels[1])  # each pair's own draw
  np.testing.assert_allclose(jax.jit(scanned.apply)(restacked, x), jax.jit(unrolled.apply)(variables, x),
                             rtol=1e-5, atol=1e-5)
  sample = lambda flow, v: jax.jit(lambda v: flow.apply(v, jax.random.key(3), 4, method=Flow.sample))(v)
  np.testing.assert_allclose(sample(scanned, restacked), sample(unrolled, variables), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch, x_shape", [("glow", (3,)), ("maf", (3,)), ("realnvp", (4, 4, 1))])
def test_scan_steps_where_there_is_no_scan_is_refused(arch, x_shape):
  flow = Flow(FlowConfig(arch, x_shape, hidden=(8,), steps_per_level=2, scan_steps=True))
  with pytest.raises(ValueError, match=f"scan_steps scans the steps of .*, not of {arch}; set it False"):
    flow.init(jax.random.key(0), jnp.zeros((2,) + x_shape))


def _scanned_blocks_layout(tree, blocks: int):
  """Every ResNet conditioner's parameters (Conv_0, then two convolutions per residual block, then the
  output convolution) in the layout of the same conditioner with scan_blocks."""
  if not isinstance(tree, dict):
    return tree
  if f"Conv_{2 * blocks + 1}" in tree:
    stack = lambda first: jax.tree.map(lambda *a: jnp.stack(a), *[tree[f"Conv_{first + 2 * i}"]
                                                                  for i in range(blocks)])
    return {"Conv_0": tree["Conv_0"], "blocks": {"Conv_0": stack(1), "Conv_1": stack(2)},
            "Conv_1": tree[f"Conv_{2 * blocks + 1}"]}
  return {name: _scanned_blocks_layout(sub, blocks) for name, sub in tree.items()}


_BLOCKS_SIZE = dict(x_shape=(8, 8, 3), hidden=(8, 8, 8, 8), num_levels=2, steps_per_level=2,
                   preprocess="shift", conditioner="conv")


@pytest.mark.parametrize("arch", ["realnvp", "nsf", "glow"])
def test_scan_blocks_reaches_the_conditioners_of_each_image_flow(arch):
  # Each flow builds its conditioners in its own place: every one of them must be laid out scanned.
  unrolled, scanned = (Flow(FlowConfig(arch, **_BLOCKS_SIZE, scan_blocks=scan)) for scan in (False, True))
  x, key = jnp.zeros((4, 8, 8, 3)), jax.random.key(1)
  shapes = lambda init: jax.tree.map(lambda a: a.shape, jax.eval_shape(init, key, x))
  restacked = shapes(lambda key, x: _scanned_blocks_layout(unrolled.init(key, x), blocks=3))
  assert restacked == shapes(scanned.init)
  assert restacked != shapes(unrolled.init)  # the layouts differ: every conditioner was restacked


def test_scanned_conditioner_blocks_are_the_unrolled_flow():
  # The scan is the conditioner's own (bijectors.ConvConditioner), the same inside every flow.
  unrolled, scanned = (Flow(FlowConfig("glow", **_BLOCKS_SIZE, scan_blocks=scan)) for scan in (False, True))
  x = jax.random.uniform(jax.random.key(0), (4, 8, 8, 3))
  variables = _perturbed(jax.jit(unrolled.init)(jax.random.key(1), x), jax.random.key(2), scale=0.1)
  restacked = _scanned_blocks_layout(variables, blocks=3)
  np.testing.assert_allclose(jax.jit(scanned.apply)(restacked, x), jax.jit(unrolled.apply)(variables, x),
                             rtol=1e-5, atol=1e-4)
  sample = lambda flow, v: jax.jit(lambda v: flow.apply(v, jax.random.key(3), 4, method=Flow.sample))(v)
  np.testing.assert_allclose(sample(scanned, restacked), sample(unrolled, variables), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("arch,shape", [("realnvp", (8, 9, 1)), ("nice", (9, 8, 1)), ("glow", (8, 10, 1)),
                                        ("nsf", (8, 10, 3))])
def test_images_the_squeezes_cannot_divide_are_refused_in_one_line(arch, shape):
  flow = Flow(FlowConfig(arch, shape, hidden=(8,), num_levels=2, steps_per_level=1))
  message = f"image size {shape} cannot be squeezed over 2 levels: height and width must be multiples of"
  with pytest.raises(ValueError, match="^" + re.escape(message)):
    flow.init(jax.random.key(0), jnp.zeros((1, *shape)))
