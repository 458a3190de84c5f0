import jax
import jax.numpy as jnp
import numpy as np

from gm_jax.data import transforms


def test_uniform_dequantization_stays_in_the_levels_bin():
  x = jnp.arange(17).reshape(1, 17)
  y = transforms.dequantize_uniform(jax.random.key(0), jnp.tile(x, (100, 1)), 17)
  assert np.all(np.floor(np.asarray(y) * 17) == np.tile(np.arange(17), (100, 1)))


def test_symmetric_scaling_round_trips():
  x = jnp.arange(256)
  assert np.array_equal(transforms.from_symmetric(transforms.to_symmetric(x, 256), 256), x)
  assert float(transforms.to_symmetric(x, 256).min()) == -1.0


def test_binarize_draws_one_with_probability_level_over_top_level():
  """Dynamic binarization: level k of 17 is 1 with probability k / 16 (0 never, 16 always)."""
  n = 20_000
  x = jnp.tile(jnp.arange(17), (n, 1))
  frequency = np.asarray(transforms.binarize(jax.random.key(1), x, 17), np.float64).mean(0)
  p = np.arange(17) / 16
  assert frequency[0] == 0.0 and frequency[16] == 1.0
  assert np.all(np.abs(frequency - p) <= 5 * np.sqrt(p * (1 - p) / n))
