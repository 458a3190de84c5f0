import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.data import toy2d
from gm_jax.evaluation.mode_coverage import high_quality_assignment, mode_coverage, summarize_histogram


def test_samples_from_the_data_capture_every_mode():
  ring = toy2d.ring(8, 1.0, 0.01)
  x = ring.sample(jax.random.key(0), 2500)
  m = mode_coverage(x, ring.means_K2, ring.std)
  assert m["modes_captured"] == 8
  assert m["high_quality_fraction"] > 0.98  # P(chi_2 < 9) = 1 - exp(-4.5) = 0.989
  assert m["reverse_kl"] < 0.01


def test_collapsed_generator():
  grid = toy2d.grid(5, 2.0, 0.05)
  # Half the samples on mode 0, half on mode 3, plus some far from every mode.
  x = np.concatenate([np.repeat(grid.means_K2[[0]], 40, 0), np.repeat(grid.means_K2[[3]], 40, 0),
                      np.full((20, 2), 1.0, np.float32)])
  m = mode_coverage(x, grid.means_K2, grid.std)
  assert m["modes_captured"] == 2
  assert m["high_quality_fraction"] == pytest.approx(0.8)
  assert m["reverse_kl"] == pytest.approx(math.log(25 / 2))  # KL((1/2, 1/2, 0, ...) || uniform over 25)


@pytest.mark.parametrize("threshold,kwargs", [(3.0, {}), (3.0, {"threshold": 3.0}),
                                              (2.0, {"threshold": 2.0})])
def test_high_quality_border_is_the_threshold_in_standard_deviations(threshold, kwargs):
  """A sample is high quality when its Euclidean distance to the nearest mode, in units of the mode's std,
  is below the threshold (3 by default): points just inside and just outside along a diagonal."""
  means = np.array([[1.0, -2.0], [40.0, 40.0]], np.float32)
  std = 0.25
  diagonal = np.array([1.0, 1.0]) / np.sqrt(2.0)
  radii = np.array([0.995, 1.005]) * threshold * std
  x = (means[0] + radii[:, None] * diagonal).astype(np.float32)
  assignment = np.asarray(high_quality_assignment(jnp.asarray(x), jnp.asarray(means), std, **kwargs))
  np.testing.assert_array_equal(assignment, [[1.0, 0.0], [0.0, 0.0]])
  m = mode_coverage(x, means, std, **kwargs)
  assert m == {"modes_captured": 1.0, "high_quality_fraction": 0.5, "reverse_kl": pytest.approx(math.log(2))}


def test_summary_of_an_empty_histogram():
  assert summarize_histogram(np.zeros(4)) == {"modes_captured": 0.0, "high_quality_fraction": 0.0,
                                              "reverse_kl": float("inf")}
  # Uneven over 4 modes: KL(h || uniform) = sum p log(4 p).
  h = np.array([0.3, 0.1, 0.0, 0.1])
  p = h / h.sum()
  expected = {"modes_captured": 3.0, "high_quality_fraction": pytest.approx(0.5),
              "reverse_kl": pytest.approx(float(np.sum(p[p > 0] * np.log(4 * p[p > 0]))))}
  assert summarize_histogram(h) == expected
