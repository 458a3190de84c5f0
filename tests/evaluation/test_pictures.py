"""Sample pictures are written for points of any dimension and for image grids."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from gm_jax.data import text
from gm_jax.evaluation import pictures


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_points_picture_for_any_dimension(dim, tmp_path):
  """The samples (at x = 5) are drawn in blue beside the grey reference (at x = -5), on their own side."""
  path = tmp_path / "points.png"
  rng = np.random.default_rng(0)
  samples = np.concatenate([np.full((50, 1), 5.0), rng.normal(size=(50, dim - 1))], 1)
  reference = np.concatenate([np.full((80, 1), -5.0), rng.normal(size=(80, dim - 1))], 1)
  pictures.save_points(path, samples, bounds=(-8.0, 8.0), reference_N2=reference, title="t")
  assert Image.open(path).size == (400, 400)
  rgb = np.asarray(Image.open(path).convert("RGB"), np.int32)
  blue = np.all(np.abs(rgb - [31, 119, 180]) < 40, axis=-1)  # matplotlib's first colour
  assert blue.sum() > 20 and np.nonzero(blue.any(0))[0].min() > 200


def test_image_grid_rescales_levels_and_tiles():
  """Five 2 x 3 images of levels 0, 4, ..., 16 in rows of three, one white pixel of padding around each."""
  images = np.arange(5)[:, None, None, None] * np.ones((5, 2, 3, 1), np.int32) * 4
  grid = pictures.image_grid(images, num_levels=17, columns=3, pad=1)
  expected = np.full((2 * 3 + 1, 3 * 4 + 1, 1), 255, np.uint8)  # the padding, and the empty sixth place
  for i in range(5):
    row, column = divmod(i, 3)
    expected[1 + 3 * row:3 + 3 * row, 1 + 4 * column:4 + 4 * column] = round(i * 4 * 255 / 16)
  np.testing.assert_array_equal(grid, expected)


def test_non_finite_pixels_show_as_black_and_white_without_a_warning():
  images = np.array([[[[np.nan], [np.inf]], [[-np.inf], [16.0]]]], np.float32)  # one 2 x 2 image
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    grid = pictures.image_grid(images, 17, pad=0)
  np.testing.assert_array_equal(grid[..., 0], [[0, 255], [0, 255]])


def test_text_samples_are_utf8_with_their_newlines_under_any_locale(tmp_path):
  """Written by a process whose locale encodes ASCII only: the characters and the \r\n are as stored."""
  stored = "héllo wörld\r\nκόσμε 世界 🙂\n" * 20
  (tmp_path / "corpus.txt").write_bytes(stored.encode())
  script = ("import pathlib, sys; from gm_jax.data import text; from gm_jax.evaluation import pictures; "
            "ds = text.load(sys.argv[1] + '/corpus.txt', context=8); "
            "out = pathlib.Path(sys.argv[1]) / 's.png'; "
            "pictures.save_samples(out, ds.train.tokens[None, :40], ds, 'text')")
  env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0", "JAX_PLATFORMS": "cpu"}
  subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, env=env, capture_output=True)
  assert (tmp_path / "s.txt").read_bytes() == stored[:40].encode()


def test_byte_level_samples_keep_bytes_that_are_not_utf8(tmp_path):
  """A Latin-1 corpus at byte level: its samples were written with every non-ASCII byte replaced."""
  stored = "Ça coûte très cher, déjà vu.\n".encode("latin-1") * 20
  (tmp_path / "corpus.txt").write_bytes(stored)
  ds = text.load(str(tmp_path / "corpus.txt"), level="byte", context=8)
  pictures.save_samples(tmp_path / "s.png", ds.train.tokens[None, :40], ds, "text")
  assert (tmp_path / "s.txt").read_bytes() == stored[:40]
  assert ds.spec.extras["tokenizer"].decode(ds.train.tokens[:2]) == "\ufffda"  # printable form
