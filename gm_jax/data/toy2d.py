"""Two-dimensional toy distributions with known densities.

Each distribution has `sample(key, n) -> x_N2` and `log_prob(x_N2) -> logp_N`. The mixtures and the
checkerboard have closed-form densities; two moons and two spirals are noisy curves, i.e. continuous
mixtures p(x) = E_{t ~ U(0,1)}[N(x; c(t), s^2 I)], whose density is computed by quadrature over t.
`entropy(...)` returns the true differential entropy (closed form where it exists, otherwise a Monte
Carlo estimate with its standard error) so that a model's test NLL can be shown against the floor.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

_LOG_2PI = math.log(2 * math.pi)


def _isotropic_normal_logpdf(x_N2: jax.Array, means_K2: jax.Array, std: float) -> jax.Array:
  """log N(x; mean_k, std^2 I) for every pair, shape (N, K). The two coordinates' squares are added
  explicitly: XLA:CPU vectorizes a sum over a trailing axis of 2 poorly (the moons' log-density took
  2.1x as long)."""
  sq_dist_NK = (x_N2[..., 0:1] - means_K2[:, 0]) ** 2 + (x_N2[..., 1:2] - means_K2[:, 1]) ** 2
  return -0.5 * sq_dist_NK / std**2 - 2 * math.log(std) - _LOG_2PI


@dataclasses.dataclass(frozen=True)
class IsotropicMixture:
  """Equal-weight mixture of isotropic Gaussians with the given centres."""

  name: str
  means_K2: np.ndarray
  std: float

  def sample(self, key: jax.Array, n: int) -> jax.Array:
    k_comp, k_noise = jax.random.split(key)
    comp_N = jax.random.randint(k_comp, (n,), 0, len(self.means_K2))
    return jnp.asarray(self.means_K2)[comp_N] + self.std * jax.random.normal(k_noise, (n, 2))

  def log_prob(self, x_N2: jax.Array) -> jax.Array:
    logp_NK = _isotropic_normal_logpdf(x_N2, jnp.asarray(self.means_K2), self.std)
    return logsumexp(logp_NK, axis=-1) - math.log(len(self.means_K2))

  @property
  def bounds(self) -> tuple[float, float]:
    pad = 6 * self.std + 0.5
    return float(self.means_K2.min() - pad), float(self.means_K2.max() + pad)


def ring(num_modes: int = 8, radius: float = 2.0, std: float = 0.02) -> IsotropicMixture:
  angles = 2 * np.pi * np.arange(num_modes) / num_modes
  means = radius * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
  return IsotropicMixture(f"ring{num_modes}", means.astype(np.float32), std)


def grid(side: int = 5, spacing: float = 2.0, std: float = 0.05) -> IsotropicMixture:
  coords = spacing * (np.arange(side) - (side - 1) / 2)
  means = np.stack(np.meshgrid(coords, coords, indexing="ij"), axis=-1).reshape(-1, 2)
  return IsotropicMixture(f"grid{side * side}", means.astype(np.float32), std)


@dataclasses.dataclass(frozen=True)
class Checkerboard:
  """Uniform density on the dark squares of a 4x4 checkerboard covering [-2*cell, 2*cell]^2."""

  cell: float = 1.0
  name: str = "checkerboard"

  def sample(self, key: jax.Array, n: int) -> jax.Array:
    k_sq, k_u = jax.random.split(key)
    # 8 dark squares: (i + j) even on the 4x4 board.
    squares = np.array([(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0], np.float32)
    idx_N = jax.random.randint(k_sq, (n,), 0, len(squares))
    square_N2 = jnp.asarray(squares)[idx_N]
    corner_N2 = (square_N2 - 2.0) * self.cell
    x_N2 = corner_N2 + self.cell * jax.random.uniform(k_u, (n, 2))
    # float32 rounding puts about one draw in 4 million, drawn next to its square's edge, on the edge or
    # across it, where log_prob finds it in a light square (log p = -inf): such a draw moves to its square's
    # centre, so that every sample has the density of the squares it was drawn from.
    in_square_N = jnp.all(self._square(x_N2) == square_N2, axis=-1)
    return jnp.where(in_square_N[:, None], x_N2, corner_N2 + 0.5 * self.cell)

  def _square(self, x_N2: jax.Array) -> jax.Array:
    """The board's (row, column) of each point (outside the board below 0 or above 3)."""
    return jnp.floor(x_N2 / self.cell + 2.0)

  def log_prob(self, x_N2: jax.Array) -> jax.Array:
    ij_N2 = self._square(x_N2)
    inside_N = jnp.all((ij_N2 >= 0) & (ij_N2 <= 3), axis=-1)
    dark_N = (ij_N2.sum(-1).astype(jnp.int32) % 2) == 0
    log_density = -math.log(8 * self.cell**2)
    return jnp.where(inside_N & dark_N, log_density, -jnp.inf)

  @property
  def bounds(self) -> tuple[float, float]:
    return -2.0 * self.cell - 0.5, 2.0 * self.cell + 0.5


@dataclasses.dataclass(frozen=True)
class NoisyCurves:
  """Points on one or more parametric curves plus isotropic Gaussian noise.

  p(x) = (1/M) sum_m integral_0^1 N(x; c_m(t), std^2 I) dt, evaluated with the midpoint rule on
  `num_quadrature` nodes per curve; the node spacing (under 0.02 for the default curves; by
  `quadrature_nodes` std / 2 on average along the curve, up to about std where it moves fastest) is at
  most `std`, where the midpoint rule's error is negligible (tested: the density integrates to 1).
  """

  name: str
  curves: tuple[Callable[[jax.Array], jax.Array], ...]
  std: float
  extent: float
  num_quadrature: int = 1000

  def sample(self, key: jax.Array, n: int) -> jax.Array:
    k_curve, k_t, k_noise = jax.random.split(key, 3)
    curve_N = jax.random.randint(k_curve, (n,), 0, len(self.curves))
    t_N = jax.random.uniform(k_t, (n,))
    points_MN2 = jnp.stack([c(t_N) for c in self.curves])
    on_curve_N2 = jnp.take_along_axis(points_MN2, curve_N[None, :, None], axis=0)[0]
    return on_curve_N2 + self.std * jax.random.normal(k_noise, (n, 2))

  def log_prob(self, x_N2: jax.Array) -> jax.Array:
    t_Q = (jnp.arange(self.num_quadrature) + 0.5) / self.num_quadrature
    nodes_Q2 = jnp.concatenate([c(t_Q) for c in self.curves])
    logp_NQ = _isotropic_normal_logpdf(x_N2, nodes_Q2, self.std)
    return logsumexp(logp_NQ, axis=-1) - math.log(nodes_Q2.shape[0])

  @property
  def bounds(self) -> tuple[float, float]:
    return -self.extent, self.extent


def quadrature_nodes(curves, std: float, least: int = 1000) -> int:
  """Nodes per curve for NoisyCurves' midpoint rule: at least `least`, and enough that neighbours lie
  std / 2 apart on average along the longest curve (a geometry with many turns or a small std otherwise
  made the density a lumpy mixture of the nodes, and the entropy floor 0.57 nats off for 10-turn
  spirals). The nodes are even in t, so where a curve moves fastest (a spiral's outer turn) they lie up to
  twice as far apart, about std, where the midpoint rule's error is still negligible."""
  t = jnp.linspace(0.0, 1.0, 100_001)
  length = max(float(jnp.sum(jnp.linalg.norm(jnp.diff(curve(t), axis=0), axis=-1))) for curve in curves)
  return max(least, math.ceil(2 * length / std))


def two_moons(std: float = 0.1) -> NoisyCurves:
  """scikit-learn's make_moons geometry shifted by (-0.5, -0.25), which centres it at the origin: two
  interleaved half circles of radius 1."""

  def upper(t):
    a = jnp.pi * t
    return jnp.stack([jnp.cos(a) - 0.5, jnp.sin(a) - 0.25], axis=-1)

  def lower(t):
    a = jnp.pi * t
    return jnp.stack([0.5 - jnp.cos(a), 0.25 - jnp.sin(a)], axis=-1)

  return NoisyCurves("moons", (upper, lower), std, extent=2.5,
                     num_quadrature=quadrature_nodes((upper, lower), std))


def two_spirals(std: float = 0.1, turns: float = 1.5, radius: float = 3.0) -> NoisyCurves:
  """Two interleaved Archimedean spirals r = radius * t, the second rotated by pi."""

  def spiral(sign):
    def curve(t):
      angle = 2 * jnp.pi * turns * t
      r = radius * t
      return sign * jnp.stack([r * jnp.cos(angle), r * jnp.sin(angle)], axis=-1)

    return curve

  curves = (spiral(1.0), spiral(-1.0))
  return NoisyCurves("spirals", curves, std, extent=radius + 1.0,
                     num_quadrature=quadrature_nodes(curves, std))


DISTRIBUTIONS: dict[str, Callable[..., object]] = {
    "ring": ring,
    "grid": grid,
    "checkerboard": Checkerboard,
    "moons": two_moons,
    "spirals": two_spirals,
}


COUNTS = ("num_modes", "side")  # geometry fields that count; every other one is a positive length or width


def make(name: str, **kwargs):
  """Builds a toy distribution by name; kwargs are its geometry (radius, std, spacing ...)."""
  if name not in DISTRIBUTIONS:
    raise ValueError(f"unknown toy2d distribution {name!r}; choose one of {sorted(DISTRIBUTIONS)}")
  accepted = inspect.signature(DISTRIBUTIONS[name]).parameters
  unknown = sorted(set(kwargs) - set(accepted))
  if unknown:
    raise ValueError(f"data.geometry has {', '.join(unknown)}, which the {name} distribution does not take "
                     f"(it takes {', '.join(accepted) or 'nothing'}); set --config.data.geometry='{{}}' for "
                     f"its defaults")
  given = {**{k: v.default for k, v in accepted.items()}, **kwargs}
  for field, value in given.items():
    if isinstance(accepted[field].default, str):  # a name, not a geometry
      continue
    if field in COUNTS:
      ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
      need = "an integer >= 1"
    else:
      number = isinstance(value, (int, float)) and not isinstance(value, bool)
      ok = number and math.isfinite(value) and value > 0
      need = "a finite number > 0"
    if not ok:
      raise ValueError(f"data.geometry's {field}={value!r} must be {need} for the {name} distribution")
  return DISTRIBUTIONS[name](**kwargs)


@dataclasses.dataclass(frozen=True)
class Entropy:
  nats: float
  stderr: float  # 0 for closed forms
  method: str


_LOG_PROB_BLOCK = 2_500


def log_prob_in_blocks(dist, x_N2, log_prob: Callable | None = None) -> np.ndarray:
  """log p(x) (N,) in float64, computed _LOG_PROB_BLOCK points at a time: a curve's (points x 2,000 nodes)
  terms then stay cache-sized (the moons' entropy took 9.3 s in 50,000-point calls, 2.0 s so, on a 2-core
  CPU), and the memory does not grow with N (a 100,000-point test split in one call took 1.6 GB).
  `log_prob`: dist.log_prob jitted once by a caller with several calls (a new jit of it traces again)."""
  log_prob = log_prob or jax.jit(dist.log_prob)
  return np.concatenate([np.asarray(log_prob(x_N2[j:j + _LOG_PROB_BLOCK]), np.float64)
                         for j in range(0, len(x_N2), _LOG_PROB_BLOCK)])


# Draws of the entropy's Monte Carlo estimate (config data.entropy_samples): a standard error of 0.001 nats
# on the ring.
ENTROPY_SAMPLES = 1_000_000


def entropy(dist, key: jax.Array | None = None, num_samples: int = ENTROPY_SAMPLES) -> Entropy:
  """Differential entropy H = -E_p[log p(x)] in nats.

  Closed form for the checkerboard (log of its area); for the others a Monte Carlo average of
  -log p over `num_samples` draws, with its standard error.
  """
  if isinstance(dist, Checkerboard):
    return Entropy(math.log(8 * dist.cell**2), 0.0, "closed_form")
  key = jax.random.key(0) if key is None else key
  chunk = 50_000  # draws per key: the estimate depends on it
  log_prob = jax.jit(dist.log_prob)
  neg_logp = -np.concatenate([
      log_prob_in_blocks(dist, dist.sample(jax.random.fold_in(key, i), min(chunk, num_samples - i)), log_prob)
      for i in range(0, num_samples, chunk)])
  return Entropy(float(neg_logp.mean()), float(neg_logp.std() / math.sqrt(len(neg_logp))), "monte_carlo")
