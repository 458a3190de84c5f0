"""Sample pictures are written for points of any dimension and for image grids."""

import warnings

import numpy as np
import pytest
from PIL import Image

from gm_jax.evaluation import pictures


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_points_picture_for_any_dimension(dim, tmp_path):
  path = tmp_path / "points.png"
  rng = np.random.default_rng(0)
  pictures.save_points(path, rng.normal(size=(50, dim)), reference_N2=rng.normal(size=(80, dim)), title="t")
  assert Image.open(path).size == (400, 400)


def test_image_grid_rescales_levels_and_tiles():
  images = np.zeros((5, 2, 3, 1), np.int32)
  images[1] = 16
  grid = pictures.image_grid(images, num_levels=17, columns=3, pad=1)
  assert grid.shape == (2 * 3 + 1, 3 * 4 + 1, 1)
  assert grid[1, 5, 0] == 255 and grid[1, 1, 0] == 0  # image 1 is white, image 0 black
  assert grid[0, 0, 0] == 255  # padding


def test_non_finite_pixels_show_as_black_and_white_without_a_warning():
  images = np.array([[[[np.nan], [np.inf]], [[-np.inf], [16.0]]]], np.float32)  # one 2 x 2 image
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    grid = pictures.image_grid(images, 17, pad=0)
  np.testing.assert_array_equal(grid[..., 0], [[0, 255], [0, 255]])
