"""Rational-quadratic splines: monotone, exact inverse, log-det of the Jacobian, identity tails, and knots
that respect the minimum bin sizes; the NSF coupling as a bijector."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.models import bijectors as bj
from gm_jax.models import splines
from tests.models.test_bijectors import _check, _perturbed

BOUND = 3.0
BINS = 8


def _params(key, shape, scale=2.0):
  return scale * jax.random.normal(key, (*shape, splines.num_spline_params(BINS)))


@pytest.mark.parametrize("seed", range(2))
def test_monotone_and_inverse_round_trip(seed):
  x = jnp.linspace(-BOUND + 1e-4, BOUND - 1e-4, 4001)
  params = jnp.broadcast_to(_params(jax.random.key(seed), (), scale=1.0),
                            (x.size, splines.num_spline_params(BINS)))
  y, log_det = splines.rational_quadratic_spline(x, params, BOUND)
  assert np.all(np.diff(np.asarray(y)) > 0), "strictly increasing"
  assert float(y.min()) >= -BOUND and float(y.max()) <= BOUND
  x_back, inv_log_det = splines.rational_quadratic_spline(y, params, BOUND, inverse=True)
  # Float32 precision: where the spline is nearly flat (slopes ~1e-3 with random parameters) one rounding
  # of y moves g^-1(y) by ulp(y) / g'(x), so there the round trip is checked in y: g(g^-1(y)) == y.
  np.testing.assert_allclose(splines.rational_quadratic_spline(x_back, params, BOUND)[0], y, atol=1e-5)
  steep = np.asarray(log_det) > np.log(0.1)
  np.testing.assert_allclose(np.asarray(x_back)[steep], np.asarray(x)[steep], atol=1e-5)
  np.testing.assert_allclose(np.asarray(inv_log_det)[steep], -np.asarray(log_det)[steep], atol=5e-4)


def test_log_det_equals_derivative_and_random_round_trip():
  key_x, key_p = jax.random.split(jax.random.key(1))
  x = jax.random.uniform(key_x, (500,), minval=-BOUND, maxval=BOUND)
  params = _params(key_p, (500,), scale=1.0)
  f = lambda xi, pi: splines.rational_quadratic_spline(xi, pi, BOUND)[0]
  deriv = jax.vmap(jax.grad(f))(x, params)
  _, log_det = splines.rational_quadratic_spline(x, params, BOUND)
  np.testing.assert_allclose(log_det, jnp.log(deriv), atol=1e-4)
  y = f(x, params)
  x_back = splines.rational_quadratic_spline(y, params, BOUND, inverse=True)[0]
  np.testing.assert_allclose(f(x_back, params), y, atol=1e-5)
  steep = np.asarray(log_det) > np.log(0.1)
  np.testing.assert_allclose(np.asarray(x_back)[steep], np.asarray(x)[steep], atol=1e-5)


def _forward_float64(x, x_knots, y_knots, slopes):
  """The spline g(x) and log g'(x) in float64 NumPy, from given knots (one spline, x a vector)."""
  x_knots, y_knots, slopes = (np.asarray(a, np.float64) for a in (x_knots, y_knots, slopes))
  k = np.sum(x[:, None] >= x_knots[1:-1], axis=1)
  w, h = x_knots[k + 1] - x_knots[k], y_knots[k + 1] - y_knots[k]
  s, d0, d1 = h / w, slopes[k], slopes[k + 1]
  xi = (x - x_knots[k]) / w
  denom = s + (d0 + d1 - 2 * s) * xi * (1 - xi)
  y = y_knots[k] + h * (s * xi**2 + d0 * xi * (1 - xi)) / denom
  return y, np.log(s**2 * (d1 * xi**2 + 2 * s * xi * (1 - xi) + d0 * (1 - xi) ** 2) / denom**2)


@pytest.mark.parametrize("width, height, slope", [(-3.0, 3.0, -5.0), (3.0, -4.0, 5.0)],
                         ids=["narrow-tall-bin-flat-knot", "wide-flat-bin-steep-knot"])
def test_inverse_just_below_a_knot_where_the_slopes_differ_widely(width, height, slope):
  """Near a bin's top knot the inverse's quadratic has a discriminant far smaller than its terms; written
  as their difference it rounded to zero or below (a NaN log-det and gradient, or errors of 0.2 nats).
  Below a steep knot atop a flat bin its linear coefficient is negative, and the root's form for a
  positive one cancelled (errors of 0.2 nats)."""
  params = np.zeros(splines.num_spline_params(BINS), np.float32)
  params[4], params[BINS + 4], params[2 * BINS + 4] = width, height, slope  # bin 4 and its top knot
  x_knots, y_knots, slopes = (np.asarray(a) for a in splines.spline_knots(jnp.asarray(params), BOUND))
  y = [y_knots[5]]
  for _ in range(400):  # the 400 float32 values below the knot
    y.append(np.nextafter(y[-1], np.float32(-BOUND)))
  y = np.array(y[1:], np.float32)
  batch = jnp.broadcast_to(jnp.asarray(params), (len(y), params.size))
  x, log_det = jax.jit(lambda y, p: splines.rational_quadratic_spline(y, p, BOUND, inverse=True))(
      jnp.asarray(y), batch)
  grads = jax.jit(jax.vmap(jax.grad(
      lambda yi, pi: splines.rational_quadratic_spline(yi, pi, BOUND, inverse=True)[1], argnums=(0, 1))))(
      jnp.asarray(y), batch)
  assert all(np.isfinite(np.asarray(g)).all() for g in grads)
  # float64 bisection on the forward map with the same (float32) knots: the exact inverse.
  lo, hi = np.full(len(y), float(x_knots[0])), np.full(len(y), float(x_knots[-1]))
  for _ in range(80):
    mid = (lo + hi) / 2
    below = _forward_float64(mid, x_knots, y_knots, slopes)[0] < y.astype(np.float64)
    lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
  exact_log_det = -_forward_float64((lo + hi) / 2, x_knots, y_knots, slopes)[1]
  np.testing.assert_allclose(np.asarray(log_det, np.float64), exact_log_det, atol=2e-3)


def test_tails_are_the_identity():
  x = jnp.array([-10.0, -BOUND - 1e-3, BOUND + 1e-3, 7.0])
  params = _params(jax.random.key(2), (4,))
  for inverse in (False, True):
    y, log_det = jax.jit(lambda x, p: splines.rational_quadratic_spline(x, p, BOUND, inverse))(x, params)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(log_det, 0.0)
  # Gradients stay finite on both sides of the bound.
  g = jax.jit(jax.grad(lambda p: splines.rational_quadratic_spline(x, p, BOUND)[1].sum()))(params)
  assert np.all(np.isfinite(np.asarray(g)))


@pytest.mark.parametrize("bins,scale", [(BINS, 0.0), (1, 0.0), (1, 5.0)])
def test_zero_parameters_give_the_identity(bins, scale):
  """Zero parameters give the identity; so does one bin whatever its parameters (its only knots are the
  bound's, with slope 1)."""
  x = jnp.linspace(-BOUND, BOUND, 101)
  params = scale * jax.random.normal(jax.random.key(4), (101, splines.num_spline_params(bins)))
  y, log_det = splines.rational_quadratic_spline(x, params, BOUND)
  np.testing.assert_allclose(y, x, atol=1e-5)
  np.testing.assert_allclose(log_det, 0.0, atol=1e-5)


def test_knots_respect_minimum_bin_width_height_and_slope():
  params = 50.0 * jax.random.normal(jax.random.key(3), (64, splines.num_spline_params(BINS)))
  min_w, min_h, min_d = 1e-2, 2e-2, 1e-3
  xk, yk, dk = splines.spline_knots(params, BOUND, min_w, min_h, min_d)
  np.testing.assert_allclose(xk[:, [0, -1]], np.broadcast_to([-BOUND, BOUND], (64, 2)))
  np.testing.assert_allclose(yk[:, [0, -1]], np.broadcast_to([-BOUND, BOUND], (64, 2)))
  assert float(jnp.min(jnp.diff(xk, axis=-1))) >= 2 * BOUND * min_w * (1 - 1e-4)
  assert float(jnp.min(jnp.diff(yk, axis=-1))) >= 2 * BOUND * min_h * (1 - 1e-4)
  assert float(jnp.min(dk)) >= min_d
  assert xk.shape == yk.shape == dk.shape == (64, BINS + 1)
  np.testing.assert_array_equal(dk[:, [0, -1]], 1.0)  # continuous with the linear tails
  with pytest.raises(ValueError, match="minimum bin size"):
    splines.spline_knots(params, BOUND, min_bin_width=0.2)


def test_spline_coupling_inverts_and_log_det_matches_jacobian():
  shape = (6,)
  layer = splines.SplineCoupling(bj.checkerboard_mask(shape, 1), bj.MLPConditioner((8,), 3 * BINS - 1),
                                 num_bins=BINS, bound=BOUND)
  x = 1.5 * jax.random.normal(jax.random.key(4), (3, *shape))  # some entries in the tails
  variables = _perturbed(jax.jit(layer.init)(jax.random.key(0), x), jax.random.key(1), scale=0.1)
  _check(layer, x, variables)
