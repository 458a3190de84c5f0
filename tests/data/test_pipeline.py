import numpy as np
import pytest

from gm_jax.data import pipeline
from gm_jax.data.pipeline import ArraySource, TrainIterator, eval_batches, stream_indices


def _source(n):
  return ArraySource({"x": np.arange(n, dtype=np.float32)[:, None]})


def test_every_epoch_is_a_permutation_and_epochs_differ():
  idx = stream_indices(seed=3, start=0, count=30, n=10)
  for e in range(3):
    assert sorted(idx[10 * e:10 * (e + 1)]) == list(range(10))
  assert not np.array_equal(idx[:10], idx[10:20])


@pytest.mark.parametrize("values", [range(0), range(7), range(2, 12, 3), range(5, 6)])
def test_a_range_digests_as_the_int64_array_of_its_values(monkeypatch, values):
  monkeypatch.setattr(pipeline, "_RANGE_BLOCK", 3)  # ranges of several blocks
  as_array = np.array(values, dtype=np.int64)
  assert pipeline.digest(["a", values, np.ones(2)]) == pipeline.digest(["a", as_array, np.ones(2)])
  assert pipeline.digest([range(len(values) + 1)]) != pipeline.digest([values])


def test_epoch_orders_are_the_seeded_permutations_and_few_are_held():
  # The order every run since the first has drawn (a resumed run's batches depend on it); the cache holds
  # two epochs' orders in int32, where five epochs of a long stream once held four in int64.
  n = 1000
  idx = stream_indices(seed=5, start=0, count=5 * n, n=n)
  for epoch in range(5):
    assert np.array_equal(idx[epoch * n:(epoch + 1) * n], np.random.default_rng([5, epoch]).permutation(n))
  assert pipeline.epoch_permutation.cache_info().currsize <= 2
  assert pipeline.epoch_permutation(5, 4, n).dtype == np.int32


def test_stream_is_a_pure_function_of_position():
  a = stream_indices(1, 0, 57, 13)
  b = np.concatenate([stream_indices(1, 0, 20, 13), stream_indices(1, 20, 37, 13)])
  assert np.array_equal(a, b)


def test_resumed_iterator_continues_the_same_batches():
  src = _source(37)
  full = TrainIterator(src, 8, seed=0)
  batches = [next(full)["x"] for _ in range(10)]
  resumed = TrainIterator(src, 8, seed=0)
  first = [next(resumed)["x"] for _ in range(4)]
  state = resumed.get_state()
  again = TrainIterator(src, 8, seed=0)
  again.set_state(state)
  rest = [next(again)["x"] for _ in range(6)]
  assert all(np.array_equal(a, b) for a, b in zip(batches, first + rest))


def test_processes_read_disjoint_parts_of_the_global_batch():
  """Step after step, across epoch boundaries, the processes' parts join into the one-process batch (a
  process that walked a stream of its own matched at the first step only), and so do the evaluation's."""
  src = _source(50)
  whole = TrainIterator(src, 12, seed=5)
  parts = [TrainIterator(src, 12, seed=5, process_index=p, process_count=3) for p in range(3)]
  for _ in range(10):  # 120 examples: two epoch boundaries
    expected, got = next(whole), [next(part) for part in parts]
    for key in ("x", "index"):
      assert np.array_equal(np.concatenate([g[key] for g in got]), expected[key])
  one = list(eval_batches(src, 12))
  three = [list(eval_batches(src, 12, process_index=p, process_count=3)) for p in range(3)]
  assert all(len(batches) == len(one) for batches in three)
  for i, expected in enumerate(one):
    for key in ("x", "index", "mask"):
      assert np.array_equal(np.concatenate([batches[i][key] for batches in three]), expected[key])


def test_batch_not_divisible_by_processes_is_a_clear_error_when_drawn():
  """Only drawing a batch needs the split: eval and sample modes restore a run's data state (to notice
  changed data) on any number of processes."""
  trained = TrainIterator(_source(10), 10, seed=0)
  next(trained)
  on_three = TrainIterator(_source(10), 10, seed=0, process_count=3)
  on_three.set_state(trained.get_state())
  assert on_three.position == 1
  with pytest.raises(ValueError, match="divisible by the number of processes"):
    next(on_three)


def test_resuming_with_another_batch_size_or_other_data_is_refused():
  it = TrainIterator(_source(10), 4, seed=0)
  with pytest.raises(ValueError, match="does not match"):
    it.set_state({"position": 3, "seed": 0, "global_batch_size": 8})
  grown = TrainIterator(_source(11), 4, seed=0)  # e.g. a file added to an image folder
  with pytest.raises(ValueError, match="holds 11 examples, but this run was trained on 10: the data changed"):
    grown.set_state(it.get_state())


def test_resuming_on_other_examples_of_the_same_count_is_refused():
  read = lambda x: ArraySource({"x": x}, fingerprinted=True)  # as from a user's file
  state = TrainIterator(read(np.arange(10.0)), 4, seed=0).get_state()
  assert TrainIterator(read(np.arange(10.0)), 4, seed=0).fingerprint == state["fingerprint"]
  TrainIterator(read(np.arange(10.0)), 4, seed=0).set_state(state)
  assert "fingerprint" not in TrainIterator(_source(10), 4, seed=0).get_state()  # generated data
  edited = read(np.arange(10.0) * 2)
  with pytest.raises(ValueError, match="the training split's examples differ from those this run was trained "
                                       "on .*: the data changed since"):
    TrainIterator(edited, 4, seed=0).set_state(state)
  del state["fingerprint"]  # a checkpoint from before fingerprints: resumed on the count alone
  TrainIterator(edited, 4, seed=0).set_state(state)


def test_a_source_is_fingerprinted_once_however_many_iterators_read_it():
  class Counted(ArraySource):
    calls = 0

    def fingerprint(self):
      Counted.calls += 1
      return super().fingerprint()

  source = Counted({"x": np.arange(10.0)}, fingerprinted=True)
  first, second = TrainIterator(source, 4, seed=0), TrainIterator(source, 4, seed=1)
  assert first.fingerprint == second.fingerprint and Counted.calls == 1


def test_eval_batches_cover_the_split_once_with_a_mask():
  src = _source(23)
  batches = list(eval_batches(src, 10))
  xs = np.concatenate([b["x"][b["mask"] > 0, 0] for b in batches])
  assert np.array_equal(xs, np.arange(23))
  assert batches[-1]["mask"].sum() == 3
