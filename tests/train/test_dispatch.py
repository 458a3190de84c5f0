"""The host stays a few programs ahead of the devices (gm_jax.train.dispatch): a deeper queue of sharded
programs makes XLA:CPU abort, and only a loop that never reads its results builds one."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from gm_jax import tasks
from gm_jax.train import loop, step as step_lib
from gm_jax.train.dispatch import PROGRAMS_AHEAD, DispatchWindow
from tests.conftest import REPO, load_config, xla_flags


@jax.jit
def _slow(x_NN):
  """Milliseconds of compute for a few microseconds of dispatch: its calls queue up unless waited for."""
  return jax.lax.fori_loop(0, 20, lambda i, x: jnp.tanh(x @ x.T), x_NN)


def _unfinished(outputs) -> int:
  return sum(not leaf.is_ready() for leaf in jax.tree.leaves(outputs))


@pytest.mark.parametrize("ahead", [1, 3])
def test_the_window_keeps_at_most_its_programs_unfinished(ahead):
  window, outputs, x = DispatchWindow(ahead), [], jnp.full((128, 128), 0.01)
  most = 0
  for _ in range(12):
    x = _slow(x)
    outputs.append(x)
    window.add(x)
    most = max(most, _unfinished(outputs))
  assert most == ahead  # would be 12 without the waits (checked: the calls alone queue up)


def test_the_trainer_keeps_a_few_steps_unfinished_and_reads_finished_ones_in_bunches(tmp_path, monkeypatch):
  from_config = step_lib.from_config
  unfinished_at_dispatch, live_arrays, chain = [], {}, []

  def slowed_from_config(*args, **kwargs):
    init_fn, train_step, schedules = from_config(*args, **kwargs)

    def slowed_step(state, batch):
      unfinished_at_dispatch.append(_unfinished(chain))
      chain.append(_slow(chain[-1] if chain else jnp.full((256, 256), 0.01)))  # 8 ms a step here
      state, metrics = train_step(state, batch)
      return state, {**metrics, "slow": (jnp.sum(chain[-1]), jnp.float32(1))}  # waited for with the step's

    return init_fn, slowed_step, schedules

  # Two steps a bunch apart hold as many arrays: a long log window's metrics are not all kept to its end.
  monkeypatch.setattr(loop, "_FINISHED_STEPS_READ_AT", 8)
  apart = (12, 20)

  def count_live_arrays(step):
    if step in apart:
      live_arrays[step] = len(jax.live_arrays()) - len(chain)  # without the test's own

  monkeypatch.setattr(step_lib, "from_config", slowed_from_config)
  config = load_config("toy2d_gmm", "tiny")
  config.train.update(num_steps=30, log_every=30, eval_every=0, sample_every=0, checkpoint_every=0)
  tasks.train(config, str(tmp_path), after_step=count_live_arrays)
  assert len(unfinished_at_dispatch) == 30
  # More than one shows the steps did queue up (8 at once without the window, checked).
  assert 1 < max(unfinished_at_dispatch) <= PROGRAMS_AHEAD
  assert abs(live_arrays[20] - live_arrays[12]) < 16, live_arrays  # 64 more when every step's was kept


EIGHT_DEVICES = """
import sys
import jax, jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
from gm_jax.train.dispatch import DispatchWindow

mesh = jax.make_mesh((8,), ("data",))
x_BD = jax.device_put(jnp.ones((1024, 128)), NamedSharding(mesh, P("data")))
w_DD = jax.device_put(jnp.eye(128), NamedSharding(mesh, P()))
step = jax.jit(lambda w, x: w - 0.01 * jax.grad(lambda w: jnp.mean(jnp.tanh(x @ w) ** 2))(w))
window = DispatchWindow() if sys.argv[1] == "window" else None
for _ in range(200):
  w_DD = step(w_DD, x_BD)  # the gradient is a sum over the 8 devices
  if window:
    window.add(w_DD)
print(float(w_DD[0, 0]))
"""


def test_eight_devices_run_hundreds_of_sharded_steps_through_the_window():
  # Without the window, XLA:CPU aborts this loop after its 40 s collective timeout (exit 134).
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": xla_flags(devices=8)}
  proc = subprocess.run([sys.executable, "-c", EIGHT_DEVICES, "window"], capture_output=True, text=True,
                        env=env, cwd=REPO, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
