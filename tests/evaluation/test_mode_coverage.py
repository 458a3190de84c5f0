import math

import jax
import numpy as np
import pytest

from gm_jax.data import toy2d
from gm_jax.evaluation.mode_coverage import mode_coverage


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


def test_three_standard_deviations_is_the_border():
  means = np.zeros((1, 2), np.float32)
  m = mode_coverage(np.array([[0.029, 0.0], [0.031, 0.0]], np.float32), means, 0.01)
  assert m["high_quality_fraction"] == pytest.approx(0.5)
