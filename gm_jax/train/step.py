"""The one jitted train step (all of a task's updates) and the jitted eval step."""

from __future__ import annotations

import collections

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from gm_jax.data import transforms
from gm_jax.evaluation import metrics as metrics_lib
from gm_jax.train import cpu_compile, host_memory, optim, sharding
from gm_jax.train import state as state_lib
from gm_jax.train.state import NetworkState, TrainState
from gm_jax.train.task import Task, Update


def _microbatch(batch: dict[str, jax.Array], i: jax.Array, repeats: int) -> dict[str, jax.Array]:
  """Rows j with j % repeats == i; each device keeps its own rows (see Update)."""

  def take(a):
    grouped = a.reshape(a.shape[0] // repeats, repeats, *a.shape[1:])
    return jax.lax.dynamic_index_in_dim(grouped, i, axis=1, keepdims=False)

  return jax.tree.map(take, batch)


def update_labels(task: Task) -> list[str]:
  """Each update's name in the metrics: its network's, numbered (g.1, g.2) where a network has several
  updates in a step, so that the second's metrics do not overwrite the first's."""
  counts = collections.Counter(u.network for u in task.updates)
  seen: collections.Counter = collections.Counter()
  labels = []
  for u in task.updates:
    seen[u.network] += 1
    labels.append(u.network if counts[u.network] == 1 else f"{u.network}.{seen[u.network]}")
  return labels


def guard_names(task: Task) -> list[str]:
  """What the guard checks per update, as its error names them, in the order `nonfinite_metric` indexes
  them: the loss, the gradient (its global norm) and the optimizer's update (its global norm).

  Finite loss and gradients can still give a non-finite update (e.g. a non-finite learning-rate
  schedule), which would make the parameters NaN.
  """
  names = []
  for update, label in zip(task.updates, update_labels(task)):
    which = f"network {update.network!r}" + (f" (update {label})" if label != update.network else "")
    names += [f"{what} of {which}" for what in ("loss", "gradient", "optimizer update")]
  return names


def metric_name(task: Task, label: str, metric: str) -> str:
  """A train metric's logged name: prefixed by its network (or update label, `update_labels`) when the
  step runs several updates."""
  return f"{label}/{metric}" if len(task.updates) > 1 else metric


class TrainStep:
  """Builds and holds the compiled train step of a task with its optimizers ({network: optax transform}).

  step(state, batch) -> (state, metrics): the step's key is fold_in(base_key, state.step); update u,
  repeat i uses fold_in(fold_in(key, u), i); `augment(key, batch)`, if given, transforms the training batch
  first with key fold_in(key, number of updates). Objectives derive per-example keys from batch['index'],
  the example's global position, so results do not depend on the device count. The state is donated.
  The state is placed on the mesh by `rules` (gm_jax.train.sharding) and keeps that placement.
  `num_traces` counts Python traces of the step (it must stay 1); `jit(state)` is the jax.jit function
  for states shaped like `state` (for lowering and compiling ahead of time, as the benchmarks do).
  """

  def __init__(self, task: Task, optimizers: dict[str, optax.GradientTransformation], base_key: jax.Array,
               mesh: Mesh, ema_decay: float, rules=sharding.DEFAULT_RULES, augment=None):
    self.task = task
    self.augment = augment
    self.optimizers = optimizers
    self.base_key = base_key
    self.ema_decay = ema_decay
    self.mesh = mesh
    self.rules = rules
    self.num_traces = 0
    self.jitted = None

  def jit(self, state: TrainState):
    """The jitted step, built once: its state shardings come from the state's shapes."""
    if self.jitted is None:
      state_sharding = sharding.state_shardings(state, self.mesh, self.rules)
      self.jitted = jax.jit(self._step, in_shardings=(state_sharding, sharding.batch_sharded(self.mesh)),
                            out_shardings=(state_sharding, sharding.replicated(self.mesh)),
                            donate_argnums=(0,), compiler_options=cpu_compile.compiler_options())
    return self.jitted

  def __call__(self, state: TrainState, batch: dict[str, jax.Array]):
    return self.jit(state)(state, batch)

  def _name(self, label: str, metric: str) -> str:
    return metric_name(self.task, label, metric)

  def _apply_update(self, update: Update, label: str, networks: dict[str, NetworkState], batch, key):
    """One update of update.network, its metrics named by `label`; skipped (state kept) when the loss,
    grads or update are not finite."""
    net = networks[update.network]
    # The loss sees whole parameters and statistics, and hands back whole gradients and statistics; only
    # the optimizer's update works on the stored shards (sharding.gathered).
    params = sharding.gathered({name: n.params for name, n in networks.items()}, self.mesh)
    model_state = sharding.gathered({name: n.model_state for name, n in networks.items()}, self.mesh)

    def loss_of(own_params):
      return update.loss_fn({**params, update.network: own_params}, model_state, batch, key)

    (loss, (metrics, new_model_state)), grads = jax.value_and_grad(loss_of, has_aux=True)(
        params[update.network])
    grads, new_model_state = sharding.gathered((grads, new_model_state), self.mesh)
    grad_norm = optax.tree.norm(grads)
    updates, new_opt_state = self.optimizers[update.network].update(grads, net.opt_state, net.params)
    new_params = optax.apply_updates(net.params, updates)
    # One reduction over the update covers the new parameters: finite old params + finite update.
    update_norm = optax.tree.norm(updates)
    finite = jnp.stack([jnp.isfinite(loss), jnp.isfinite(grad_norm), jnp.isfinite(update_norm)])
    ok = jnp.all(finite)
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
    new_networks = dict(networks)
    for name, state in new_model_state.items():
      new_networks[name] = new_networks[name].replace(model_state=keep(state, networks[name].model_state))
    new_networks[update.network] = new_networks[update.network].replace(
        params=keep(new_params, net.params), opt_state=keep(new_opt_state, net.opt_state))
    metrics = {self._name(label, k): v for k, v in metrics.items()}
    metrics[self._name(label, "loss")] = metrics_lib.scalar(loss)
    metrics[self._name(label, "grad_norm")] = metrics_lib.scalar(grad_norm)
    return new_networks, metrics, finite

  def _step(self, state: TrainState, batch: dict[str, jax.Array]):
    self.num_traces += 1
    key = jax.random.fold_in(self.base_key, state.step)
    if self.augment is not None:
      batch = self.augment(jax.random.fold_in(key, len(self.task.updates)), batch)
    networks = state.networks
    all_metrics = {}
    all_finite = []
    for u, (update, label) in enumerate(zip(self.task.updates, update_labels(self.task))):
      update_key = jax.random.fold_in(key, u)
      if update.repeats == 1:
        networks, metrics, finite = self._apply_update(update, label, networks, batch, update_key)
      else:
        def body(carry, i, update=update, label=label, update_key=update_key):
          nets, metrics_sum = carry
          nets, metrics, finite = self._apply_update(
              update, label, nets, _microbatch(batch, i, update.repeats), jax.random.fold_in(update_key, i))
          return (nets, metrics_lib.add(metrics_sum, metrics)), finite

        zero = self._zero_metrics(update, label, networks, batch, update_key)
        (networks, metrics), finite_R = jax.lax.scan(body, (networks, zero), jnp.arange(update.repeats))
        finite = jnp.all(finite_R, axis=0)
      all_metrics.update(metrics)
      all_finite.append(finite)
    finite = jnp.concatenate(all_finite)
    step_ok = jnp.all(finite)
    networks = self._update_ema(networks, step_ok)
    first_bad = jnp.argmin(finite)  # index of the first False, if any
    newly_bad = (state.nonfinite_step < 0) & ~step_ok
    new_state = state.replace(
        step=state.step + 1, networks=networks,
        nonfinite_step=jnp.where(newly_bad, state.step, state.nonfinite_step),
        nonfinite_metric=jnp.where(newly_bad, first_bad.astype(jnp.int32), state.nonfinite_metric))
    return new_state, all_metrics

  def _zero_metrics(self, update, label, networks, batch, key):
    shapes = jax.eval_shape(lambda: self._apply_update(
        update, label, networks, _microbatch(batch, jnp.int32(0), update.repeats), key)[1])
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

  def _update_ema(self, networks: dict[str, NetworkState], finite: jax.Array) -> dict[str, NetworkState]:
    """The parameters' averages, kept as they were when some update of the step was not finite (as the
    updates are not applied, so the state stays the last good one)."""
    d = self.ema_decay
    average = lambda e, p: jnp.where(finite, d * e + (1.0 - d) * p, e)
    return {name: (net if net.ema_params is None else net.replace(
        ema_params=jax.tree.map(average, net.ema_params, net.params)))
            for name, net in networks.items()}


def make_eval_step(task: Task, mesh: Mesh):
  """eval_step(params, model_state, batch, key) -> metrics (sums); the batch is split over the mesh, the
  parameters stored as the train state places them and gathered whole for the computation."""
  def eval_step(params, model_state, batch, key):
    return task.eval_fn(sharding.gathered(params, mesh), sharding.gathered(model_state, mesh), batch, key)

  return cpu_compile.jit(eval_step, out_shardings=sharding.replicated(mesh))


class StateInit:
  """init(key, batch) -> TrainState, computed under jit and placed on the mesh by `rules`;
  abstract(key, batch) is its shape with those shardings (what a checkpoint restores onto). Both are
  traced once: a run's init key and first batch always have the same shapes."""

  def __init__(self, task: Task, optimizers: dict[str, optax.GradientTransformation], mesh: Mesh,
               use_ema: bool, rules=sharding.DEFAULT_RULES):
    self.mesh = mesh
    self.rules = rules
    self._create = lambda key, batch: state_lib.create(task.init(key, batch), optimizers, use_ema)
    self._abstract = None
    self._jitted = None

  def abstract(self, key, batch) -> TrainState:
    if self._abstract is None:
      shapes = jax.eval_shape(self._create, key, batch)
      self._abstract = jax.tree.map(lambda s, place: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=place),
                                    shapes, sharding.state_shardings(shapes, self.mesh, self.rules))
    return self._abstract

  def __call__(self, key, batch) -> TrainState:
    if self._jitted is None:
      placement = jax.tree.map(lambda s: s.sharding, self.abstract(key, batch))
      self._jitted = jax.jit(self._create, out_shardings=placement)
    return self._jitted(key, batch)


def from_config(task: Task, config, mesh: Mesh, key: jax.Array):
  """(init_fn, TrainStep, {network: schedule}) for `task` with the optimizers, schedules, EMA and state
  placement (config.mesh.rules) that `config` names: what the trainer runs, for benchmarks and tests that
  drive steps themselves."""
  host_memory.keep_freed_memory()  # each step reuses the host memory the previous one freed (XLA:CPU)
  optimizers, schedules = optim.make_optimizers(config, task.optimizer_blocks, task.updates_per_step)
  rules = sharding.check_rules(config.mesh.rules)
  init = StateInit(task, optimizers, mesh, use_ema=config.train.ema_decay > 0, rules=rules)
  augment = transforms.random_horizontal_flip if config.data.get("random_flip") else None
  return init, TrainStep(task, optimizers, key, mesh, config.train.ema_decay, rules, augment), schedules
