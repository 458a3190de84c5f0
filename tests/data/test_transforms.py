import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from gm_jax.data import transforms


def test_uniform_dequantization_is_uniform_within_the_levels_bin():
  """y = (k + u) / 17 with u ~ U(0, 1): the bound on log P(k) needs u uniform, not only in the bin."""
  n = 1000
  x = jnp.tile(jnp.arange(17).reshape(1, 17), (n, 1))
  y = np.asarray(transforms.dequantize_uniform(jax.random.key(0), x, 17), np.float64)
  assert np.all(np.floor(y * 17) == np.asarray(x))
  u = (y * 17 - np.asarray(x)).ravel()
  assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / u.size) and abs(u.var() - 1 / 12) < 0.005
  assert scipy.stats.kstest(u, "uniform").pvalue > 1e-4


@pytest.mark.parametrize("num_levels", [2, 17, 256])
def test_a_draw_just_below_one_stays_in_its_levels_bin(num_levels):
  """u the largest float32 below 1: in float32, k + u rounded to k + 1 for k >= 128, which put y on the
  next level's edge (or at 1 for the top level) outside the bin the bound integrates over."""
  k = jnp.arange(num_levels)
  u = jnp.full(k.shape, np.nextafter(np.float32(1), np.float32(0)))
  y = np.asarray(transforms.point_in_bin(k, u, num_levels), np.float64)
  np.testing.assert_array_equal(np.floor(y * num_levels), np.arange(num_levels))
  assert y.max() < 1.0
  np.testing.assert_allclose(y, (np.arange(num_levels) + 1) / num_levels, rtol=1e-6)


def test_symmetric_scaling_maps_levels_onto_minus_one_to_one_and_back_with_clipping():
  x = jnp.arange(256)
  np.testing.assert_allclose(transforms.to_symmetric(x, 256), 2 * np.arange(256) / 255 - 1, atol=1e-6)
  assert float(transforms.to_symmetric(x, 256).max()) == 1.0
  assert np.array_equal(transforms.from_symmetric(transforms.to_symmetric(x, 256), 256), x)
  np.testing.assert_array_equal(transforms.from_symmetric(jnp.array([-1.3, 1.3]), 256), [0, 255])


def test_binarize_draws_one_with_probability_level_over_top_level():
  """Dynamic binarization: level k of 17 is 1 with probability k / 16 (0 never, 16 always)."""
  n = 20_000
  x = jnp.tile(jnp.arange(17), (n, 1))
  frequency = np.asarray(transforms.binarize(jax.random.key(1), x, 17), np.float64).mean(0)
  p = np.arange(17) / 16
  assert frequency[0] == 0.0 and frequency[16] == 1.0
  assert np.all(np.abs(frequency - p) <= 5 * np.sqrt(p * (1 - p) / n))


def test_random_horizontal_flip_mirrors_about_half_the_images_by_their_index():
  """Each image is itself or its mirror, chosen by its index alone (so halves of a batch, as devices hold
  them, flip alike); about half flip; labels and indices stay."""
  rng = np.random.default_rng(0)
  batch = {"x": rng.integers(0, 17, size=(400, 3, 5, 2)).astype(np.int32), "index": np.arange(1000, 1400),
           "label": rng.integers(0, 10, size=400)}
  key = jax.random.key(3)
  out = jax.tree.map(np.asarray, transforms.random_horizontal_flip(key, batch))
  mirrored = np.all(out["x"] == batch["x"][:, :, ::-1], axis=(1, 2, 3))
  assert np.all(mirrored | np.all(out["x"] == batch["x"], axis=(1, 2, 3)))
  assert 160 < mirrored.sum() < 240  # Binomial(400, 1/2): mean 200, std 10
  np.testing.assert_array_equal(out["label"], batch["label"])
  np.testing.assert_array_equal(out["index"], batch["index"])
  half = {k: v[200:] for k, v in batch.items()}
  np.testing.assert_array_equal(transforms.random_horizontal_flip(key, half)["x"], out["x"][200:])
  other_key = np.asarray(transforms.random_horizontal_flip(jax.random.key(4), batch)["x"])
  assert not np.array_equal(other_key, out["x"])


def test_random_flip_is_refused_on_data_that_are_not_images():
  from gm_jax import data as data_lib
  from tests.conftest import load_config

  config = load_config("toy2d_gmm", "tiny")
  config.data.random_flip = True
  message = "data.random_flip mirrors training images, but data 'ring8' is points, not images"
  with pytest.raises(ValueError, match=message + "; set data.random_flip=False"):
    data_lib.load_dataset(config.data)
