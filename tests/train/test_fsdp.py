"""Sharded train state (mesh.fsdp): the placement rules, real sharding on 8 fake devices, the same losses as
the replicated run, and checkpoints that resume on another layout (tests/test_end_to_end.py)."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from gm_jax.train import sharding
from tests.conftest import DEVICE_COUNT_ATOL, DEVICE_COUNT_RTOL, REPO, xla_flags


def _fake_mesh(data: int, fsdp: int):
  """A mesh of the given shape over (repeated) CPU devices: placement rules look only at its shape."""
  devices = np.array([jax.devices()[0]] * (data * fsdp)).reshape(data, fsdp)
  return jax.sharding.Mesh(devices, sharding.BATCH_AXES)


def _specs(tree, mesh, rules=sharding.DEFAULT_RULES):
  shapes = jax.tree.map(lambda shape: jax.ShapeDtypeStruct(shape, np.float32), tree,
                        is_leaf=lambda x: isinstance(x, tuple))
  placed = sharding.state_shardings(shapes, mesh, rules)
  return jax.tree.map(lambda s: s.spec, placed)


def test_auto_rule_splits_the_largest_divisible_dimension_and_replicates_the_rest():
  tree = {"params": {"kernel": (12, 8), "bias": (8,), "odd": (3, 5), "conv": (3, 3, 16, 32)},
          "opt_state": {"mu": {"kernel": (12, 8)}, "count": ()}}
  specs = _specs(tree, _fake_mesh(2, 4))
  assert specs["params"] == {"kernel": P("fsdp"), "bias": P("fsdp"), "odd": P(),
                             "conv": P(None, None, None, "fsdp")}
  assert specs["opt_state"] == {"mu": {"kernel": P("fsdp")}, "count": P()}
  # fsdp = 1 is plain data parallelism: everything replicated whatever the rules say
  assert set(jax.tree.leaves(_specs(tree, _fake_mesh(8, 1)))) == {P()}


def test_rules_match_paths_in_order_and_bad_rules_fail_in_one_line():
  tree = {"params": {"Dense_0": {"kernel": (16, 8), "bias": (8,)}},
          "ema_params": {"Dense_0": {"kernel": (16, 8)}}}
  rules = ((r"ema_params/", "replicated"), (r"kernel$", (None, "fsdp")), (".*", "auto"))
  specs = _specs(tree, _fake_mesh(2, 4), rules)
  assert specs == {"params": {"Dense_0": {"kernel": P(None, "fsdp"), "bias": P("fsdp")}},
                   "ema_params": {"Dense_0": {"kernel": P()}}}
  with pytest.raises(ValueError, match=r"splits dimension 0 of params/Dense_0/bias \(shape \(8,\)\) "
                                       r"over 'fsdp' of size 3, which does not divide it; change the rule"):
    _specs({"params": {"Dense_0": {"bias": (8,)}}}, _fake_mesh(1, 3), (("bias", ("fsdp",)),))
  with pytest.raises(ValueError, match="use 'auto', 'replicated' or at most 1 entries"):
    _specs({"bias": (8,)}, _fake_mesh(1, 2), (("bias", (None, "fsdp")),))
  # Checked at fsdp = 1 too.
  for bad in [((1, 2),), (("kernel", ("model",)),), (("[", "auto"),), ("kernel",),
              (("kernel", ("fsdp", "fsdp")),)]:
    with pytest.raises(ValueError, match=r"is not a \(regular expression, spec\) pair .* fix "
                                         r"--config.mesh.rules"):
      sharding.check_rules(bad)
  assert sharding.check_rules([["kernel$", ["fsdp", None]], (".*", "auto")]) == (
      ("kernel$", ["fsdp", None]), (".*", "auto"))
  with pytest.raises(ValueError, match=r"mesh.fsdp=3 must be a positive divisor of the number of devices "
                                       r"\(8\)"):
    sharding.make_mesh(3, [jax.devices()[0]] * 8)


def _worker(*args) -> dict:
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": xla_flags(8)}
  proc = subprocess.run([sys.executable, "-m", "tests.train.fsdp_worker", *map(str, args)],
                        capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def runs():
  return _worker(8, 4, 1)


@pytest.mark.parametrize("fsdp,mesh", [(8, {"data": 1, "fsdp": 8}), (4, {"data": 2, "fsdp": 4})])
def test_state_is_sharded_on_eight_devices_and_trains_like_the_replicated_state(runs, fsdp, mesh):
  sharded, replicated = runs[str(fsdp)], runs["1"]
  assert sharded["mesh"] == mesh and replicated["mesh"] == {"data": 8, "fsdp": 1}
  split = 0
  for path, (shape, shard) in sharded["before"].items():
    divisible = [d for d in range(len(shape)) if shape[d] % fsdp == 0]
    expected = list(shape)
    if divisible:
      largest = max(divisible, key=lambda d: (shape[d], d))
      expected[largest] //= fsdp
      split += 1
    assert shard == expected, path
    assert sharded["after"][path] == [shape, shard], path  # the step keeps the placement
  assert split > 20 and any("opt_state" in p for p in sharded["before"])
  for path, (shape, shard) in replicated["before"].items():
    assert shard == shape, path
  # Every leaf that fsdp divides is split, so each device holds 1/fsdp of those bytes; what stays whole
  # (the step counters) is a few scalars.
  whole = sum(4 * int(np.prod(shape)) for shape, shard in sharded["before"].values() if shape == shard)
  assert sharded["device_bytes"] == (sharded["total_bytes"] - whole) // fsdp + whole
  assert whole < sharded["total_bytes"] / 1000
  assert replicated["device_bytes"] == replicated["total_bytes"]
  _assert_same_steps(sharded, replicated)


def _assert_same_steps(sharded: dict, replicated: dict):
  """Every step's metrics, gradient norms among them, as the replicated run's."""
  for step, (got, want) in enumerate(zip(sharded["metrics"], replicated["metrics"])):
    assert got.keys() == want.keys()
    for name in want:
      np.testing.assert_allclose(got[name], want[name], rtol=DEVICE_COUNT_RTOL, atol=DEVICE_COUNT_ATOL,
                                 err_msg=f"step {step}: {name}")


def test_a_generator_whose_split_dimension_a_reshape_spreads_gets_the_replicated_gradients():
  # The digits DCGAN:tiny generator views its Dense output of 64 = 4 x 4 x 4 features as an image, which
  # spreads the 8-way split over two axes; XLA's partitioner, left to place the step's activations from
  # the stored shards, returned that Dense's and BatchNorm's gradients 4x too large (the loss right).
  runs = _worker("digits_dcgan", 8, 1)
  assert any(name.endswith("grad_norm") for name in runs["8"]["metrics"][0])
  _assert_same_steps(runs["8"], runs["1"])


def test_samples_of_a_sharded_state_are_the_replicated_states():
  # At mesh.fsdp=2 on 8 devices (4 groups of 2) a digits RealNVP drew other samples from the same
  # parameters when its sampler read the stored shards (912 of 1,024 pixels differed).
  runs = _worker("digits_realnvp", 2, 1)
  sharded, replicated = (np.asarray(runs[k]["samples"]) for k in ("2", "1"))
  assert sharded.shape == (16, 8, 8, 1)
  assert np.mean(sharded != replicated) < 0.01  # a level may flip on a rounding boundary


_MANY_SHARDED_LEAVES = """
import jax, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from gm_jax.train import loop, sharding
mesh = sharding.make_mesh(8)
leaves = [jax.device_put(np.ones((8, 4), np.float32), NamedSharding(mesh, P("fsdp"))) for _ in range(300)]
bad = leaves[:-1] + [jax.device_put(np.full((8, 4), np.nan, np.float32), NamedSharding(mesh, P("fsdp")))]
print(loop.all_finite(leaves), loop.all_finite(bad))
"""


def test_the_finiteness_check_of_hundreds_of_sharded_parameters_completes():
  # All checks sent at once used to stall XLA:CPU's collectives until a rendezvous timeout aborted the run.
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": xla_flags(8)}
  proc = subprocess.run([sys.executable, "-c", _MANY_SHARDED_LEAVES], capture_output=True, text=True,
                        env=env, cwd=REPO, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.split() == ["True", "False"]


_BATCH_SIZES = """
import jax, numpy as np
from gm_jax import tasks
from tests.conftest import load_config
config = load_config("toy2d_wgan_gp", "tiny")
config.data.batch_size = 4
try:
  tasks.experiment(config, "/nonexistent/never/written")
except ValueError as e:
  print(e)
means = {}
for size in (7, 1000):  # 1000 pads the test split (8 and 512 divide it: nothing would be masked)
  config = load_config("toy2d_gmm", "tiny")
  config.eval.batch_size = size
  exp = tasks.experiment(config, "/nonexistent/never/written")
  means[exp.eval_batch_size] = exp.evaluate(exp.init_state())
  exp.checkpointer.close()
print(sorted(means), all(np.isclose(means[8][k], means[1000][k], rtol=1e-6) for k in means[1000]))
"""


def test_a_train_batch_that_does_not_split_over_the_devices_is_one_line_and_an_eval_batch_is_rounded_up():
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": xla_flags(8)}
  proc = subprocess.run([sys.executable, "-c", _BATCH_SIZES], capture_output=True, text=True, env=env,
                        cwd=REPO, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  # A GAN's step reads n_critic batches: the message names the field the user set and the product.
  # An evaluation batch of 7 on 8 devices is 8: the means of a padded and masked batch of 1000.
  assert proc.stdout.splitlines() == [
      "data.batch_size=4 x 5 batches per step=20 must be divisible by the number of devices (8); change "
      "data.batch_size",
      "[8, 1000] True"]
