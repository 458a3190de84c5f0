"""MADE, MAF and IAF: the Jacobian is triangular in the stated order (for every input dimension), the
inverse round trip is exact, and the log-det equals slogdet of jax.jacobian."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.models import made
from tests.models.test_bijectors import _check, _perturbed

D = 5


def _jacobian_B(fn, x_BD):
  """(B, D_out, D_in) Jacobian of a per-example map, one example at a time."""
  return jax.jit(jax.vmap(jax.jacobian(lambda v: fn(v[None])[0])))(x_BD)


def _rank(order):
  rank = np.empty(len(order), np.int64)
  rank[np.asarray(order)] = np.arange(len(order))
  return rank


@pytest.mark.parametrize("order", [tuple(range(D)), (3, 0, 4, 1, 2)])
def test_made_outputs_depend_only_on_earlier_inputs(order):
  net = made.MADE(hidden=(16, 16), outputs_per_dim=3, order=order)
  x = jax.random.normal(jax.random.key(0), (32, D))
  variables = _perturbed(net.init(jax.random.key(1), x), jax.random.key(2))
  jac = _jacobian_B(lambda v: net.apply(variables, v), x)  # (B, D, 3, D)
  dep = np.any(np.abs(np.asarray(jac)) > 0, axis=(0, 2))  # (out dim, in dim)
  rank = _rank(order)
  allowed = rank[None, :] < rank[:, None]  # output i may see input j iff j comes before i
  assert not np.any(dep & ~allowed), "an output sees itself or a later input"
  assert np.all(dep[allowed]), "every earlier input reaches the outputs (hidden width >= D - 1)"


CASES = [("maf", "affine", False), ("maf", "spline", True), ("iaf", "affine", True), ("iaf", "spline", False)]


def _layer(kind, transform, reverse):
  return made.MaskedAutoregressive(hidden=(32, 32), kind=kind, transform=transform, reverse=reverse,
                                   num_bins=6, bound=3.0)


@pytest.mark.parametrize("kind,transform,reverse", CASES)
def test_autoregressive_flow_is_triangular_invertible_and_log_det_exact(kind, transform, reverse):
  layer = _layer(kind, transform, reverse)
  x = jax.random.normal(jax.random.key(3), (3, D))
  # Milder parameters for splines: steep random splines make float32 inverses ill-conditioned.
  scale = 0.4 if transform == "affine" else 0.15
  variables = _perturbed(jax.jit(layer.init)(jax.random.key(4), x), jax.random.key(5), scale=scale)
  _check(layer, x, variables)  # round trip, inverse log-det, slogdet of the Jacobian
  order = np.arange(D)[::-1] if reverse else np.arange(D)
  rank = _rank(order)
  many = jax.random.normal(jax.random.key(6), (32, D))  # so no dependency hides behind dead ReLUs
  for inverse in (False, True):
    jac = np.asarray(_jacobian_B(lambda v: layer.apply(variables, v, inverse)[0], many))
    dep = np.any(np.abs(jac) > 0, axis=0)
    allowed = rank[None, :] <= rank[:, None]
    assert not np.any(dep & ~allowed), f"{kind} (inverse={inverse}) is not triangular in its order"
    # Every entry before i in the order reaches output i (the map is not accidentally diagonal).
    assert np.all(dep[allowed])


def test_conditioned_iaf_round_trip_with_context():
  layer = made.MaskedAutoregressive(hidden=(12,), kind="iaf", transform="affine")
  z = jax.random.normal(jax.random.key(6), (4, D))
  h = jax.random.normal(jax.random.key(7), (4, 3))
  variables = _perturbed(layer.init(jax.random.key(8), z, False, h), jax.random.key(9), scale=0.4)
  x, log_det = layer.apply(variables, z, True, h)  # sampling direction: one MADE pass
  z_back, log_det_back = layer.apply(variables, x, False, h)
  np.testing.assert_allclose(z_back, z, atol=1e-5)
  np.testing.assert_allclose(log_det_back, -log_det, atol=1e-5)
  other, _ = layer.apply(variables, z, True, h[::-1])
  assert float(jnp.max(jnp.abs(other - x))) > 1e-3, "the context changes the transform"
