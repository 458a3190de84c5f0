import dataclasses
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.data import toy2d

ALL = ["ring", "grid", "checkerboard", "moons", "spirals"]


# Grid cell size per distribution: a fraction of its smallest length scale.
CELL = {"ring": 0.005, "grid": 0.0125, "checkerboard": 0.01, "moons": 0.025, "spirals": 0.025}


def _grid_integrals(dist, h: float) -> tuple[float, float]:
  """Midpoint-rule integrals of p and of -p log p over the distribution's bounds plus a margin."""
  lo, hi = dist.bounds
  lo, hi = lo - 1.0, hi + 1.0
  cells = int(np.ceil((hi - lo) / h))
  centres = lo + h * (np.arange(cells) + 0.5)
  xx, yy = np.meshgrid(centres, centres, indexing="ij")
  pts = jnp.asarray(np.stack([xx.ravel(), yy.ravel()], -1), jnp.float32)
  log_prob = jax.jit(dist.log_prob)
  mass = entropy = 0.0
  for chunk in np.array_split(np.arange(len(pts)), max(1, len(pts) // 100_000)):
    logp = np.asarray(log_prob(pts[chunk]), np.float64)
    p = np.exp(logp)
    mass += float(np.sum(p))
    entropy -= float(np.sum(p * np.where(p > 0, logp, 0.0)))
  return mass * h * h, entropy * h * h


@pytest.mark.parametrize("name", ALL)
def test_density_integrates_to_one(name):
  dist = toy2d.make(name)
  assert abs(_grid_integrals(dist, CELL[name])[0] - 1.0) < 0.01


@pytest.mark.parametrize("name", ["moons", "spirals"])
def test_samples_follow_the_density_of_noisy_curves(name):
  """The sampler against the density: the Monte Carlo entropy of samples, -E[log p(x)], equals the entropy
  integrated on a grid (a sampler that drew the curve's parameter or noise otherwise would move it), and
  each curve is drawn equally often (both geometries are symmetric under x -> -x, so a sampler of one
  curve only would keep the entropy)."""
  dist = toy2d.make(name)
  h = toy2d.entropy(dist, jax.random.key(1), num_samples=200_000)
  assert h.method == "monte_carlo"
  assert h.nats == pytest.approx(_grid_integrals(dist, CELL[name])[1], abs=5 * h.stderr)
  n, m = 5000, len(dist.curves)
  x_N2 = np.asarray(dist.sample(jax.random.key(2), n))
  nodes_MT2 = np.stack([np.asarray(curve(jnp.linspace(0.0, 1.0, 1001))) for curve in dist.curves])
  nearest_N = np.argmin(((x_N2[:, None, None] - nodes_MT2[None]) ** 2).sum(-1).min(-1), axis=1)
  np.testing.assert_allclose(np.bincount(nearest_N, minlength=m) / n, 1 / m,
                             atol=5 * math.sqrt((1 / m) * (1 - 1 / m) / n))


@pytest.mark.parametrize("dist,num_modes,std", [(toy2d.ring(8, 2.0, 0.02), 8, 0.02),
                                                 (toy2d.grid(5, 2.0, 0.05), 25, 0.05)])
def test_mixture_samples_follow_their_density(dist, num_modes, std):
  """Samples of separated equal-weight modes: each mode drawn equally often, and -E[log p(x)] over the
  samples equal to the closed-form entropy log K + log(2 pi e sigma^2) (a sampler of another law, e.g. a
  standard normal, has finite log-density too)."""
  n = 40_000
  x = dist.sample(jax.random.key(0), n)
  nll = -np.asarray(dist.log_prob(x), np.float64)
  exact = math.log(num_modes) + math.log(2 * math.pi * math.e * std**2)
  assert abs(nll.mean() - exact) < 5 * nll.std() / math.sqrt(n)
  nearest = np.argmin(((np.asarray(x)[:, None] - np.asarray(dist.means_K2)[None]) ** 2).sum(-1), axis=1)
  counts = np.bincount(nearest, minlength=num_modes)
  p = 1 / num_modes
  np.testing.assert_allclose(counts / n, p, atol=5 * math.sqrt(p * (1 - p) / n))


def test_moons_are_scikit_learns_centred():
  """The noiseless curves are scikit-learn's make_moons shifted by (-0.5, -0.25) (their lower moon once sat
  one unit to the right, the arcs meeting end to end); the density's mean is the origin."""
  from sklearn.datasets import make_moons

  points, moon = make_moons(n_samples=2 * 101, noise=0.0, shuffle=False)
  t = jnp.linspace(0.0, 1.0, 101)
  dist = toy2d.make("moons")
  for curve, label in zip(dist.curves, (0, 1)):
    np.testing.assert_allclose(np.asarray(curve(t)), points[moon == label] - [0.5, 0.25], atol=1e-6)
  x = np.asarray(dist.sample(jax.random.key(0), 200_000))
  np.testing.assert_allclose(x.mean(axis=0), [0.0, 0.0], atol=0.01)


def test_ring_entropy_matches_closed_form_for_separated_modes():
  """Well separated equal-weight modes: H = log K + log(2 pi e sigma^2)."""
  dist = toy2d.ring(8, 2.0, 0.02)
  h = toy2d.entropy(dist, jax.random.key(1), num_samples=200_000)
  exact = math.log(8) + math.log(2 * math.pi * math.e * 0.02**2)
  assert abs(h.nats - exact) < 4 * h.stderr + 1e-4
  assert 0 < h.stderr < 0.01


def test_checkerboard_entropy_is_log_area():
  h = toy2d.entropy(toy2d.Checkerboard(cell=0.5))
  assert h.method == "closed_form"
  assert h.nats == pytest.approx(math.log(8 * 0.25))


def test_checkerboard_samples_are_uniform_on_its_dark_squares():
  """The sampler against the density: every sample where log_prob is log(1 / area), the 8 dark squares
  equally often, and uniform within each (a fractional coordinate's mean 1/2, variance 1/12)."""
  dist, n = toy2d.Checkerboard(cell=0.5), 80_000
  x = np.asarray(dist.sample(jax.random.key(3), n), np.float64)
  np.testing.assert_allclose(dist.log_prob(jnp.asarray(x, jnp.float32)), -math.log(8 * 0.25), rtol=1e-6)
  squares, counts = np.unique(np.floor(x / 0.5 + 2.0), axis=0, return_counts=True)
  assert len(squares) == 8 and np.all(squares.sum(-1) % 2 == 0)
  np.testing.assert_allclose(counts / n, 1 / 8, atol=5 * math.sqrt(1 / 8 * 7 / 8 / n))
  fraction = x / 0.5 + 2.0 - np.floor(x / 0.5 + 2.0)
  np.testing.assert_allclose(fraction.mean(0), 0.5, atol=5 * math.sqrt(1 / 12 / n))
  np.testing.assert_allclose(fraction.var(0), 1 / 12, rtol=0.02)


@pytest.mark.parametrize("cell", [1.0, 0.3])
def test_a_checkerboard_sample_drawn_at_its_squares_edge_keeps_the_squares_density(cell, monkeypatch):
  """Uniform draws at the ends of [0, 1): float32 rounding put about one real draw in 4 million on its
  square's far edge or across it, where log_prob found it in a light square (-inf in the data's NLL)."""
  ends = jnp.array([0.0, 2.0**-24, 0.5, 1.0 - 2.0**-24], jnp.float32)

  def uniform_at_the_ends(key, shape):  # rows (u, v) over every pair of the four values
    u = jnp.resize(ends, shape[0])
    return jnp.stack([u, jnp.repeat(ends, 4)[jnp.arange(shape[0]) % 16]], axis=-1)

  monkeypatch.setattr(jax.random, "uniform", uniform_at_the_ends)
  dist = toy2d.Checkerboard(cell=cell)
  np.testing.assert_allclose(dist.log_prob(dist.sample(jax.random.key(0), 64)), -math.log(8 * cell**2),
                             rtol=1e-6)


def test_grid_geometry():
  dist = toy2d.grid(5, 2.0, 0.05)
  assert dist.means_K2.shape == (25, 2)
  np.testing.assert_allclose(sorted(map(tuple, np.asarray(dist.means_K2))),
                             sorted(itertools.product([-4.0, -2.0, 0.0, 2.0, 4.0], repeat=2)), atol=1e-6)


def test_unknown_distribution_is_a_clear_error():
  with pytest.raises(ValueError, match="unknown toy2d distribution 'rings'"):
    toy2d.make("rings")


def test_geometry_of_another_distribution_is_a_clear_error():
  with pytest.raises(ValueError, match=r"num_modes, radius, which the grid distribution does not take \(it "
                                       r"takes side, spacing, std\)"):
    toy2d.make("grid", num_modes=8, radius=2.0)


def test_curves_take_enough_quadrature_nodes_for_their_length_and_noise():
  """Ten-turn spirals of std 0.02: the density on 1,000 nodes per curve was a lumpy mixture of the nodes
  (9 std apart), its entropy floor 0.57 nats off; now it agrees with one on ten times the nodes."""
  dist = toy2d.make("spirals", turns=10, std=0.02)
  finer = dataclasses.replace(dist, num_quadrature=10 * dist.num_quadrature)
  x = dist.sample(jax.random.key(0), 100)
  np.testing.assert_allclose(np.asarray(dist.log_prob(x)), np.asarray(finer.log_prob(x)), atol=1e-3)
  assert toy2d.make("moons").num_quadrature == toy2d.make("spirals").num_quadrature == 1000  # as before


@pytest.mark.parametrize("name,geometry,message", [
    ("ring", {"num_modes": 0}, r"num_modes=0 must be an integer >= 1 for the ring distribution"),
    ("ring", {"num_modes": 2.5}, r"num_modes=2.5 must be an integer >= 1"),
    ("ring", {"std": 0.0}, r"std=0.0 must be a finite number > 0 for the ring distribution"),
    ("checkerboard", {"cell": -1.0}, r"cell=-1.0 must be a finite number > 0"),
    ("grid", {"side": 0}, r"side=0 must be an integer >= 1"),
])
def test_a_geometry_that_gives_no_distribution_is_a_clear_error(name, geometry, message):
  """They were tracebacks, or trained and then stopped at the entropy floor (std 0: a math domain error)."""
  with pytest.raises(ValueError, match=r"^data.geometry's " + message):
    toy2d.make(name, **geometry)
