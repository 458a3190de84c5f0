"""Every flow layer, and flows composed of them: inverse(forward(x)) == x, and log|det| == slogdet of
the Jacobian computed by jax.jacobian."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.models import bijectors as bj
from gm_jax.models.flows import Flow, FlowConfig, VariationalDequantizer

VEC = (6,)
IMG = (4, 4, 2)


def _perturbed(variables, key, scale=0.3):
  """Random parameters everywhere (zero-initialized output layers would make couplings the identity)."""
  leaves, tree = jax.tree.flatten(variables)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(tree, [a + scale * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)])


LAYERS = {
    "additive_coupling_vec": (lambda: bj.Coupling(bj.checkerboard_mask(VEC, 0), bj.MLPConditioner((8,), 1),
                                                  additive=True), VEC),
    "affine_coupling_vec": (lambda: bj.Coupling(bj.checkerboard_mask(VEC, 1), bj.MLPConditioner((8,), 2)),
                            VEC),
    "affine_checkerboard_img": (lambda: bj.Coupling(bj.checkerboard_mask(IMG, 0),
                                                    bj.ConvConditioner(8, 1, 2)), IMG),
    "affine_channel_img": (lambda: bj.Coupling(bj.channel_mask(IMG, 1), bj.ConvConditioner(8, 1, 2)), IMG),
    "permute_reverse": (lambda: bj.Permute("reverse"), VEC),
    "permute_random": (lambda: bj.Permute("random", seed=3), VEC),
    "invertible_linear_vec": (lambda: bj.InvertibleLinear(seed=1), VEC),
    "invertible_1x1_conv_img": (lambda: bj.InvertibleLinear(seed=2), IMG),
    "actnorm_vec": (lambda: bj.ActNorm(), VEC),
    "actnorm_img": (lambda: bj.ActNorm(), IMG),
    "diagonal_scale_img": (lambda: bj.DiagonalScale(), IMG),
    "squeeze": (lambda: bj.Squeeze(), IMG),
    "unsqueeze": (lambda: bj.Squeeze(undo=True), (2, 2, 8)),
    "factor_out": (lambda: bj.FactorOut(bj.Coupling(bj.checkerboard_mask((4, 4, 1), 0),
                                                    bj.ConvConditioner(4, 0, 2))), IMG),
    "logit": (lambda: bj.Logit(0.05), VEC),
    "scale_shift": (lambda: bj.ScaleShift(2.0, -0.5), VEC),
    "sigmoid": (lambda: bj.Sigmoid(), VEC),
    "chain": (lambda: bj.Chain([bj.ActNorm(), bj.InvertibleLinear(),
                                bj.Coupling(bj.channel_mask(VEC, 0), bj.MLPConditioner((8,), 2))]), VEC),
}


def _input(shape, name, n=3):
  x = jax.random.normal(jax.random.key(7), (n, *shape))
  return jax.nn.sigmoid(x) if name == "logit" else x


def _check(layer, x, variables, atol=1e-5):
  y, log_det = jax.jit(lambda v: layer.apply(variables, v))(x)
  x_back, inv_log_det = jax.jit(lambda v: layer.apply(variables, v, inverse=True))(y)
  np.testing.assert_allclose(x_back, x, atol=atol)
  np.testing.assert_allclose(inv_log_det, -log_det, atol=1e-4)
  f = lambda v: layer.apply(variables, v.reshape(1, *x.shape[1:]))[0].reshape(-1)
  jac = jax.jit(jax.vmap(jax.jacobian(f)))(x.reshape(x.shape[0], -1))
  sign, logabs = jnp.linalg.slogdet(jac)
  assert np.all(np.asarray(sign) != 0)
  np.testing.assert_allclose(log_det, logabs, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_inverts_and_log_det_matches_jacobian(name):
  make, shape = LAYERS[name]
  layer = make()
  x = _input(shape, name)
  variables = _perturbed(layer.init(jax.random.key(0), x), jax.random.key(1))
  _check(layer, x, variables)


@pytest.mark.parametrize("arch,shape,levels,preprocess", [
    ("nice", (4,), 1, "none"), ("realnvp", (4,), 2, "none"), ("glow", (4,), 1, "none"),
    ("nice", (4, 4, 1), 2, "logit"), ("realnvp", (4, 4, 1), 2, "logit"), ("glow", (4, 4, 1), 2, "shift")])
def test_composed_flows_invert_and_log_det_matches_jacobian(arch, shape, levels, preprocess):
  cfg = FlowConfig(arch, shape, hidden=(8, 8), num_levels=levels, steps_per_level=2, preprocess=preprocess)
  flow = Flow(cfg)
  x = jax.random.uniform(jax.random.key(3), (2, *shape), minval=0.05, maxval=0.95)
  variables = _perturbed(jax.jit(flow.init)(jax.random.key(0), x), jax.random.key(2), scale=0.1)
  bijector = lambda v, inverse=False: flow.apply(variables, v, method=lambda m, a: m.bijector(a, inverse))

  class Wrapped:
    def apply(self, _, v, inverse=False):
      return bijector(v, inverse)

  _check(Wrapped(), x, None)


def test_actnorm_data_dependent_init():
  x = 3.0 + 2.0 * jax.random.normal(jax.random.key(0), (512, 5, 5, 3))
  layer = bj.ActNorm()
  y, _ = layer.apply(layer.init(jax.random.key(1), x), x)
  np.testing.assert_allclose(jnp.mean(y, axis=(0, 1, 2)), 0.0, atol=1e-4)
  np.testing.assert_allclose(jnp.std(y, axis=(0, 1, 2)), 1.0, atol=1e-4)


def test_alternating_masks_change_every_dimension():
  """Two couplings with opposite masks leave no dimension untouched (seed 002's warning)."""
  layer = bj.Chain([bj.Coupling(bj.checkerboard_mask(VEC, i % 2), bj.MLPConditioner((8,), 2))
                    for i in range(2)])
  x = jax.random.normal(jax.random.key(0), (4, *VEC))
  variables = _perturbed(layer.init(jax.random.key(0), x), jax.random.key(1))
  y, _ = layer.apply(variables, x)
  assert np.all(np.abs(np.asarray(y - x)) > 1e-6)


def test_variational_dequantizer_density():
  """log q(u | x) matches the change of variables from eps, and u lies in (0, 1)."""
  deq = VariationalDequantizer((4, 4, 1), hidden=(8, 8), num_couplings=2)
  x = jax.random.uniform(jax.random.key(0), (2, 4, 4, 1))
  keys = jax.random.split(jax.random.key(1), 2)
  variables = _perturbed(deq.init(jax.random.key(2), keys, x), jax.random.key(3), 0.1)
  u, log_q = deq.apply(variables, keys, x)
  assert float(u.min()) > 0 and float(u.max()) < 1
  eps = jax.vmap(lambda k: jax.random.normal(k, (4, 4, 1)))(keys)
  for i in range(2):
    f = lambda e: deq.apply(variables, keys[i:i + 1], x[i:i + 1],
                            method=lambda m, kk, xx: m.flow(e.reshape(1, 4, 4, 1), False, xx)[0]).reshape(-1)
    _, logabs = jnp.linalg.slogdet(jax.jacobian(f)(eps[i].reshape(-1)))
    log_n = jnp.sum(-0.5 * eps[i] ** 2 - 0.5 * np.log(2 * np.pi))
    np.testing.assert_allclose(log_q[i], log_n - logabs, atol=1e-4)
