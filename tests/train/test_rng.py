"""Per-example randomness is a function of the example's global index alone: not of its position in the
batch, of the other examples beside it, or of how the batch is split over devices. Sample seeds draw
from keys of their own."""

import jax
import jax.numpy as jnp
import numpy as np

from gm_jax.train.loop import sample_key
from gm_jax.train import rng
from gm_jax.train.rng import per_example_keys

INDEX = jnp.array([7, 0, 12, 3, 5, 9, 1, 30])


def _bits(keys):
  return np.asarray(jax.random.key_data(keys))


def test_each_key_is_fold_in_of_the_global_index():
  key = jax.random.key(3)
  expected = np.stack([_bits(jax.random.fold_in(key, int(i))) for i in INDEX])
  np.testing.assert_array_equal(_bits(per_example_keys(key, INDEX)), expected)
  # Distinct examples draw distinct noise; the same example twice draws the same noise.
  draws = np.asarray(jax.vmap(lambda k: jax.random.normal(k, (3,)))(per_example_keys(key, INDEX)))
  assert len({tuple(row) for row in draws.round(6)}) == len(INDEX)
  twice = _bits(per_example_keys(key, jnp.array([5, 5])))
  np.testing.assert_array_equal(twice[0], twice[1])
  # Another step's key gives other noise for the same example.
  assert not np.array_equal(_bits(per_example_keys(jax.random.key(4), INDEX)),
                            _bits(per_example_keys(key, INDEX)))


def test_keys_do_not_depend_on_batch_position_or_device_split():
  key = jax.random.key(3)
  full = _bits(per_example_keys(key, INDEX))
  permutation = np.random.default_rng(0).permutation(len(INDEX))
  np.testing.assert_array_equal(_bits(per_example_keys(key, INDEX[permutation])), full[permutation])
  np.testing.assert_array_equal(_bits(per_example_keys(key, INDEX[2:5])), full[2:5])  # a sub-batch
  for devices in (2, 4, 8):
    # Each device computes the keys of its own shard of the global batch (with their global indices).
    shards = jax.vmap(per_example_keys, in_axes=(None, 0))(key, INDEX.reshape(devices, -1))
    np.testing.assert_array_equal(_bits(shards).reshape(full.shape), full)
    per_device = np.concatenate([_bits(jax.jit(per_example_keys)(key, s)) for s in np.split(INDEX, devices)])
    np.testing.assert_array_equal(per_device, full)


def test_sample_seeds_share_no_key_with_each_other_or_the_run():
  """A sampler splits its key and a quality chunk folds its index in: the keys one level below a seed's
  key are its draws. No seed's key or draw may be another seed's (or the run's other streams')."""
  base = jax.random.key(0)
  owners = {}
  for stream in (0, 1, 2, 3, 4):
    for seed in ((0, 1, 2, 3) if stream in (3, 4) else (0,)):
      key = sample_key(base, stream, seed) if stream in (3, 4) else jax.random.fold_in(base, stream)
      below = [jax.random.fold_in(key, i) for i in range(16)] + list(jax.random.split(key, 16))
      for k in [key, *below]:
        bits = _bits(k).tobytes()
        assert owners.setdefault(bits, (stream, seed)) == (stream, seed), (owners[bits], (stream, seed))
  np.testing.assert_array_equal(_bits(sample_key(base, 3, 0)), _bits(jax.random.fold_in(base, 3)))


def test_fixed_keys_are_none_of_the_keys_of_a_run_with_seed_0():
  """The test images' one binarization and the quality reference's once used key(0) (and key(1)): with
  config.seed = 0, key(0) is the run's base key, so test example i was binarized with the run's stream
  key i (init, train steps, eval, sample grids, quality samples for i = 0-4)."""
  base = jax.random.key(0)
  streams = [sample_key(base, stream, seed) for stream in range(5) for seed in (0, 1)]
  run = {tuple(k) for k in _bits(jnp.stack([base, *streams]))}
  for stream_key in streams:
    run |= {tuple(k) for k in _bits(per_example_keys(stream_key, jnp.arange(1000)))}
  fixed = [rng.fixed_key(p) for p in (rng.TEST_BINARIZATION, rng.QUALITY_REFERENCE, rng.QUALITY_FLOOR)]
  drawn = {tuple(k) for k in _bits(jnp.stack(fixed))}
  for key in fixed:
    drawn |= {tuple(k) for k in _bits(per_example_keys(key, jnp.arange(1000)))}
  assert len(drawn) == 3 * 1001 and not drawn & run
  # What the check catches: key(0)'s per-example keys are the run's stream keys.
  assert {tuple(k) for k in _bits(per_example_keys(base, jnp.arange(5)))} <= run
