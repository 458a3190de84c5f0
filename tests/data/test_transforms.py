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


def test_binarize_probability():
  x = jnp.full((20000,), 4)
  b = transforms.binarize(jax.random.key(1), x, 17)
  assert abs(float(b.mean()) - 0.25) < 0.015
