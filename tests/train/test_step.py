"""The compiled train step: golden first step, compile-once, microbatched repeats, EMA, NaN guard; the
check that no non-finite state is saved."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gm_jax import data as data_lib
from gm_jax import tasks
from gm_jax.data import transforms
from gm_jax.evaluation.metrics import masked_mean
from gm_jax.train import loop, sharding, step as step_lib
from gm_jax.train.task import Task, Update
from tests.conftest import load_config


def _gmm_setup(num_components=1, lr=0.01):
  config = load_config("toy2d_gmm", "tiny")
  config.model.num_components = num_components
  config.optim.learning_rate = lr
  config.optim.warmup_steps = 0
  config.optim.schedule = "constant"
  dataset = data_lib.load_dataset(config.data)
  task = tasks.build(config, dataset)
  mesh = sharding.make_mesh()
  init, train_step, _ = step_lib.from_config(task, config, mesh, jax.random.key(1))
  it = data_lib.TrainIterator(dataset.train, config.data.batch_size, config.data.seed)
  batch = next(it)
  state = init(jax.random.key(0), batch)
  return config, dataset, it, batch, state, train_step, mesh


def test_first_step_golden_value():
  """One component: the loss is the closed-form Gaussian NLL and Adam's first move is lr * sign(g)."""
  config, _, _, batch, state, train_step, mesh = _gmm_setup(num_components=1, lr=0.01)
  params0 = jax.device_get(state.networks["model"].params)
  x = batch["x"].astype(np.float64)
  mu = np.asarray(params0["means"][0], np.float64)
  std = np.log1p(np.exp(np.asarray(params0["raw_scale"][0].diagonal(), np.float64))) + 1e-6
  nll = 0.5 * np.sum(((x - mu) / std) ** 2, axis=1) + np.sum(np.log(std)) + np.log(2 * np.pi)
  grads = jax.grad(lambda p: -jnp.mean(tasks.density.GaussianMixture(1, 2).apply({"params": p}, batch["x"])))(
      params0)
  state, metrics = train_step(state, sharding.put_batch(batch, mesh))
  loss = float(metrics["loss"][0])
  assert loss == pytest.approx(np.mean(nll), rel=1e-5)
  params1 = jax.device_get(state.networks["model"].params)
  for name in ("means", "raw_scale"):
    expected = params0[name] - 0.01 * grads[name] / (np.abs(grads[name]) + 1e-8)
    np.testing.assert_allclose(params1[name], expected, atol=1e-6)
  assert int(state.step) == 1


def test_step_compiles_once():
  _, _, it, _, state, train_step, mesh = _gmm_setup(num_components=4)
  for _ in range(6):
    state, _ = train_step(state, sharding.put_batch(next(it), mesh))
  assert train_step.num_traces == 1
  assert train_step.jitted._cache_size() == 1


def _noise_task(repeats: int, w0=(0.0, 0.0)) -> Task:
  """A network w with loss mean((x - w)^2) per microbatch; lets tests see which rows each repeat got."""
  def loss_fn(params, model_state, batch, key):
    err_B = jnp.sum((batch["x"] - params["net"]["w"]) ** 2, axis=-1)
    total, count = masked_mean(err_B, batch["mask"])
    return total / count, ({"first_index": (batch["index"][0].astype(jnp.float32), jnp.float32(1))}, {})

  return Task(init=lambda key, batch: {"net": {"params": {"w": jnp.asarray(w0, jnp.float32)}}},
              updates=(Update("net", loss_fn, repeats=repeats),), eval_fn=lambda *a: {})


SGD = {"net": optax.sgd(0.1)}


def test_repeats_run_sequential_updates_on_disjoint_microbatches():
  task = _noise_task(repeats=2)
  mesh = sharding.make_mesh()
  x = np.arange(8, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
  batch = {"x": x, "index": np.arange(8), "mask": np.ones(8, np.float32)}
  state = step_lib.StateInit(task, SGD, mesh, use_ema=False)(jax.random.key(0), batch)
  state, metrics = step_lib.TrainStep(task, SGD, jax.random.key(0), mesh, 0.0)(state,
                                                                              sharding.put_batch(batch, mesh))
  # Repeat 0 sees rows 0,2,4,6 (mean 3), repeat 1 rows 1,3,5,7 (mean 4); SGD on (x - w)^2 with lr 0.1.
  w = 0.0
  w = w - 0.1 * 2 * (w - 3.0)
  w = w - 0.1 * 2 * (w - 4.0)
  np.testing.assert_allclose(np.asarray(state.networks["net"].params["w"]), [w, w], rtol=1e-6)
  assert float(metrics["first_index"][0]) == 0 + 1  # rows 0 and 1 start the two microbatches
  assert float(metrics["first_index"][1]) == 2


def test_ema_starts_at_the_initial_params_and_tracks_them():
  d, w0 = 0.9, np.array([1.0, -2.0], np.float32)
  task = _noise_task(repeats=1, w0=w0)
  mesh = sharding.make_mesh()
  batch = {"x": np.full((4, 2), 1.0, np.float32), "index": np.arange(4), "mask": np.ones(4, np.float32)}
  state = step_lib.StateInit(task, SGD, mesh, use_ema=True)(jax.random.key(0), batch)
  step = step_lib.TrainStep(task, SGD, jax.random.key(0), mesh, ema_decay=d)
  ws = []
  for _ in range(2):
    state, _ = step(state, sharding.put_batch(batch, mesh))
    ws.append(np.asarray(state.networks["net"].params["w"]))
  np.testing.assert_allclose(state.networks["net"].ema_params["w"],
                             d**2 * w0 + d * (1 - d) * ws[0] + (1 - d) * ws[1], rtol=1e-6)


def test_nonfinite_loss_is_flagged_and_not_applied():
  """Nothing of the update is applied, the parameters' average included (it would move towards the kept
  parameters, which it lags)."""
  def loss_fn(params, model_state, batch, key):
    bad = jnp.any(batch["index"] == 9)
    loss = jnp.mean((batch["x"] - params["net"]["w"]) ** 2) * jnp.where(bad, jnp.nan, 1.0)
    return loss, ({}, {})

  task = Task(init=lambda key, batch: {"net": {"params": {"w": jnp.zeros(2)}}},
              updates=(Update("net", loss_fn),), eval_fn=lambda *a: {})
  mesh = sharding.make_mesh()
  step = step_lib.TrainStep(task, SGD, jax.random.key(0), mesh, ema_decay=0.5)
  make = lambda s: {"x": np.ones((4, 2), np.float32), "index": np.arange(4 * s, 4 * s + 4),
                    "mask": np.ones(4, np.float32)}
  state = step_lib.StateInit(task, SGD, mesh, use_ema=True)(jax.random.key(0), make(0))
  for s in range(4):
    before = jax.device_get(state.networks["net"])
    state, _ = step(state, sharding.put_batch(make(s), mesh))
    if s == 2:
      np.testing.assert_array_equal(state.networks["net"].params["w"], before.params["w"])
      np.testing.assert_array_equal(state.networks["net"].ema_params["w"], before.ema_params["w"])
  assert int(state.nonfinite_step) == 2
  assert step_lib.guard_names(task)[int(state.nonfinite_metric)] == "loss of network 'net'"


def test_two_updates_of_one_network_are_logged_and_guarded_apart():
  """A network updated twice per step by two losses: each update's metrics have a name of their own (the
  second's overwrote the first's), and the guard says which update failed."""
  def pull_towards(target, nan_at_index=-1):
    def loss_fn(params, model_state, batch, key):
      nan = jnp.where(jnp.any(batch["index"] == nan_at_index), jnp.nan, 1.0)
      return jnp.mean((params["net"]["w"] - target) ** 2) * nan, ({}, {})
    return loss_fn

  task = Task(init=lambda key, batch: {"net": {"params": {"w": jnp.zeros(2)}}},
              updates=(Update("net", pull_towards(1.0)), Update("net", pull_towards(3.0, nan_at_index=9))),
              eval_fn=lambda *a: {})
  mesh = sharding.make_mesh()
  step = step_lib.TrainStep(task, SGD, jax.random.key(0), mesh, 0.0)
  make = lambda s: {"x": np.ones((4, 2), np.float32), "index": np.arange(4 * s, 4 * s + 4),
                    "mask": np.ones(4, np.float32)}
  state = step_lib.StateInit(task, SGD, mesh, False)(jax.random.key(0), make(0))
  state, metrics = step(state, sharding.put_batch(make(0), mesh))
  # The first update pulls w from 0 to 0.1 (SGD 0.1 on mean((w - 1)^2)); the second sees w = 0.1.
  assert float(metrics["net.1/loss"][0]) == pytest.approx(1.0)
  assert float(metrics["net.2/loss"][0]) == pytest.approx(2.9 ** 2, rel=1e-6)
  state, _ = step(state, sharding.put_batch(make(2), mesh))  # rows 8-11: the second update's loss is NaN
  assert step_lib.guard_names(task)[int(state.nonfinite_metric)] == "loss of network 'net' (update net.2)"


def test_random_flip_mirrors_the_training_batch_with_the_steps_own_key():
  """config.data.random_flip: the step's loss sees each image mirrored as random_horizontal_flip decides
  with fold_in(step key, number of updates), a stream no update draws from."""
  def loss_fn(params, model_state, batch, key):
    left_minus_right = jnp.sum(batch["x"][:, :, 0] - batch["x"][:, :, -1], axis=(1, 2))
    return jnp.sum(params["net"]["w"] ** 2), ({"lmr": masked_mean(left_minus_right, batch["mask"])}, {})

  task = Task(init=lambda key, batch: {"net": {"params": {"w": jnp.zeros(2)}}},
              updates=(Update("net", loss_fn),), eval_fn=lambda *a: {})
  config = load_config("digits_vae", "tiny")
  config.data.random_flip = True
  mesh = sharding.make_mesh()
  init, step, _ = step_lib.from_config(task, config, mesh, jax.random.key(5))
  x = np.random.default_rng(0).integers(0, 17, size=(8, 4, 4, 1)).astype(np.int32)
  batch = {"x": x, "index": np.arange(8), "mask": np.ones(8, np.float32)}
  state = init(jax.random.key(0), batch)
  for s in range(3):
    state, metrics = step(state, sharding.put_batch(batch, mesh))
    step_key = jax.random.fold_in(jax.random.key(5), s)
    flipped = transforms.random_horizontal_flip(jax.random.fold_in(step_key, 1), batch)["x"]
    expected = np.mean(np.sum(flipped[:, :, 0] - flipped[:, :, -1], axis=(1, 2)))
    assert float(metrics["lmr"][0]) / float(metrics["lmr"][1]) == pytest.approx(expected)
    assert expected != pytest.approx(np.mean(np.sum(x[:, :, 0] - x[:, :, -1], axis=(1, 2))))
  config.data.random_flip = False
  assert step_lib.from_config(task, config, mesh, jax.random.key(5))[1].augment is None


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_value_in_any_float_array_makes_the_state_unsavable(bad):
  # The check before each checkpoint: integer arrays (step counters) are not floats and are skipped.
  tree = {"w": np.zeros((3, 4), np.float32), "b": np.zeros(4, jnp.bfloat16), "step": np.int32(7)}
  assert loop.all_finite(tree)
  for name in ("w", "b"):
    for index in np.ndindex(tree[name].shape):
      broken = {**tree, name: tree[name].copy()}
      broken[name][index] = bad
      assert not loop.all_finite(broken), (name, index)


def test_two_networks_update_in_order_within_one_step():
  """A GAN-like step: 'critic' is updated first (2 repeats), then 'gen' sees the critic's new params."""
  def critic_loss(params, model_state, batch, key):
    return jnp.sum((params["critic"]["c"] - 1.0) ** 2), ({}, {})

  def gen_loss(params, model_state, batch, key):
    # d/dg of (g - c)^2 at g = 0 is -2c: the generator's move reveals the critic value it saw.
    return jnp.sum((params["gen"]["g"] - params["critic"]["c"]) ** 2), ({}, {})

  task = Task(init=lambda key, batch: {"critic": {"params": {"c": jnp.zeros(())}},
                                       "gen": {"params": {"g": jnp.zeros(())}}},
              updates=(Update("critic", critic_loss, repeats=2), Update("gen", gen_loss)),
              eval_fn=lambda *a: {})
  optimizers = {"critic": optax.sgd(0.25), "gen": optax.sgd(0.5)}
  mesh = sharding.make_mesh()
  batch = {"x": np.zeros((4, 1), np.float32), "index": np.arange(4), "mask": np.ones(4, np.float32)}
  state = step_lib.StateInit(task, optimizers, mesh, False)(jax.random.key(0), batch)
  step = step_lib.TrainStep(task, optimizers, jax.random.key(0), mesh, 0.0)
  state, metrics = step(state, sharding.put_batch(batch, mesh))
  c = 0.0
  for _ in range(2):
    c = c - 0.25 * 2 * (c - 1.0)  # 0.5, then 0.75
  assert float(state.networks["critic"].params["c"]) == pytest.approx(c)
  assert float(state.networks["gen"].params["g"]) == pytest.approx(0.5 * 2 * c)
  assert set(metrics) >= {"critic/loss", "gen/loss", "critic/grad_norm", "gen/grad_norm"}
  assert float(metrics["critic/loss"][1]) == 2.0  # two critic updates averaged


def test_batch_statistics_are_carried_in_the_model_state():
  import flax.linen as nn

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x, train):
      return nn.BatchNorm(use_running_average=not train, momentum=0.5)(nn.Dense(1)(x))

  net = Net()

  def loss_fn(params, model_state, batch, key):
    y, updates = net.apply({"params": params["net"], **model_state["net"]}, batch["x"], True,
                           mutable=["batch_stats"])
    return jnp.mean(y**2), ({}, {"net": updates})

  task = Task(init=lambda key, batch: {"net": net.init(key, batch["x"], False)},
              updates=(Update("net", loss_fn),), eval_fn=lambda *a: {})
  mesh = sharding.make_mesh()
  x = np.random.default_rng(0).normal(3.0, 1.0, size=(64, 2)).astype(np.float32)
  batch = {"x": x, "index": np.arange(64), "mask": np.ones(64, np.float32)}
  frozen = {"net": optax.sgd(0.0)}
  state = step_lib.StateInit(task, frozen, mesh, False)(jax.random.key(0), batch)
  params = jax.device_get(state.networks["net"].params)  # the step donates the state
  state, _ = step_lib.TrainStep(task, frozen, jax.random.key(0), mesh, 0.0)(state,
                                                                           sharding.put_batch(batch, mesh))
  dense_out = x @ np.asarray(params["Dense_0"]["kernel"]) + np.asarray(params["Dense_0"]["bias"])
  mean = np.asarray(state.networks["net"].model_state["batch_stats"]["BatchNorm_0"]["mean"])
  np.testing.assert_allclose(mean, 0.5 * dense_out.mean(0), rtol=1e-4)


def test_a_network_updated_several_times_a_step_reads_its_schedule_per_step():
  """WGAN-GP's five critic updates a step: the critic's learning rate follows the train step's schedule
  (it used to advance per update, so a linear decay reached 0 after a fifth of the run). Adam on a
  constant gradient moves each parameter by exactly the learning rate, read at update i // 5."""
  config = load_config("toy2d_wgan_gp", "tiny")
  config.optim_d.update(schedule="linear", learning_rate=1.0, end_lr_ratio=0.0, warmup_steps=2)
  config.train.num_steps = 6
  task = tasks.build(config, data_lib.load_dataset(config.data))
  assert task.updates_per_step == {"discriminator": 5, "generator": 1}
  _, train_step, schedules = step_lib.from_config(task, config, sharding.make_mesh(), jax.random.key(0))
  tx = train_step.optimizers["discriminator"]
  params = {"w": jnp.zeros(3)}
  opt_state = tx.init(params)
  moves = []
  for _ in range(5 * config.train.num_steps):
    updates, opt_state = tx.update({"w": jnp.ones(3)}, opt_state, params)
    moves.append(-float(updates["w"][0]))
  expected = [float(schedules["discriminator"](i // 5)) for i in range(len(moves))]
  assert expected[-1] > 0  # the logged schedule still moves the critic in the last step
  np.testing.assert_allclose(moves, expected, rtol=1e-5)


def test_a_task_that_breaks_the_contract_is_one_line():
  """init without the {network: variables} wrapper or without params, and a metric that is not a
  (sum, count) pair, are named (they were a bare KeyError or 'iteration over a 0-d array')."""
  from gm_jax.evaluation import metrics as metrics_lib
  from gm_jax.train import state as state_lib

  with pytest.raises(ValueError,
                     match=r"init returned \['w'\] where the trainer expects its networks \['net'\]"):
    state_lib.create({"w": jnp.zeros(2)}, SGD, use_ema=False)
  with pytest.raises(ValueError, match=r"gave network 'net' the collections \['stats'\], without 'params'"):
    state_lib.create({"net": {"stats": {}}}, SGD, use_ema=False)
  with pytest.raises(ValueError, match=r"metric 'loss' is not a \(sum, count\) pair"):
    metrics_lib.Accumulator().add({"loss": jnp.float32(1.0)})
