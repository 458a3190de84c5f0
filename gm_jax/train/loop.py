"""The training loop shared by every family: train, periodic eval and samples, checkpoints, logging.

`train(config, workdir, build_task)` resumes from the latest checkpoint in workdir when there is one; a
rerun of the same command after a crash therefore continues and ends exactly as an uninterrupted run.
The caller says what is trained: `build_task(config, dataset)` gives the family's Task (gm_jax.tasks.build
for the built-in families) and `build_feature_space(config, dataset)` the sample-quality feature space.
The trainer builds the rest from the config: optimizers, schedules, EMA and the likelihood ledger.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import pathlib
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import tqdm
from absl import logging

from gm_jax import data as data_lib
from gm_jax.data import split as split_lib
from gm_jax.data.dataset import Dataset
from gm_jax.evaluation import ledger, pictures, quality_report
from gm_jax.evaluation import metrics as metrics_lib
from gm_jax.evaluation.feature_spaces import FeatureSpace
from gm_jax.train import cpu_compile, defaults, rng, sharding, termination
from gm_jax.train import step as step_lib
from gm_jax.train.checkpoint import UNREADABLE_DIR, CheckpointError, Checkpointer
from gm_jax.train.config_checks import check_config, check_eval_fields, config_to_dict
from gm_jax.train.dispatch import DispatchWindow
from gm_jax.train.processes import (check_processes_agree, check_processes_read_the_same_data,
                                    check_processes_restored_alike, on_every_process, sync_processes,
                                    text_of_process_0)
from gm_jax.train.run_files import RunFiles, claimed_unused_path, write_json_atomic
from gm_jax.train.state import TrainState
from gm_jax.train.task import Task, split_samples
from gm_jax.train.workdir import (check_eval_workdir, check_workdir, check_workdir_outside_data,
                                  check_writable, finished_summary, lock_workdir, remove_if_unused,
                                  run_directory)

TaskBuilder = Callable[[Any, Dataset], Task]
FeatureSpaceBuilder = Callable[[Any, Dataset], FeatureSpace | None]


class NonFiniteError(FloatingPointError):
  pass


def topology(fsdp: int = 1) -> dict[str, int]:
  """The device and process counts (and the fsdp group size when parameters are sharded), stored with
  every checkpoint to notice a resume on other hardware or another layout."""
  record = {"devices": jax.device_count(), "processes": jax.process_count()}
  return {**record, "fsdp": fsdp} if fsdp > 1 else record


def _describe(t: dict[str, int]) -> str:
  sharded = f", parameters sharded {t['fsdp']} ways" if t.get("fsdp", 1) > 1 else ""
  return f"{t['devices']} device(s) in {t['processes']} process(es){sharded}"


@dataclasses.dataclass
class Experiment:
  """Everything built from a config: data, task, optimizers, mesh, compiled functions, the run's files.

  build_feature_space: None measures no sample quality. read_only: restores checkpoints but never saves,
  deletes or cleans up any (eval and sample modes, which may run beside a training of the same workdir).
  """

  config: Any
  workdir: pathlib.Path
  build_task: TaskBuilder
  build_feature_space: FeatureSpaceBuilder | None = None
  read_only: bool = False

  def __post_init__(self):
    config = self.config
    self.workdir = pathlib.Path(self.workdir)
    self.dataset = on_every_process(lambda: data_lib.load_dataset(config.data), "to load the data")
    check_processes_read_the_same_data(self.dataset)
    self.task = self.build_task(config, self.dataset)
    self.mesh = sharding.make_mesh(config.mesh.fsdp)
    factor = self.task.examples_per_step_factor  # e.g. a GAN's n_critic batches per step
    self.global_batch_size = config.data.batch_size * factor
    if not self.read_only:  # eval and sample modes draw no training batch (and may not change its size)
      sharding.check_batch_size(self.global_batch_size, self.mesh,
                                "data.batch_size" if factor == 1 else
                                f"data.batch_size={config.data.batch_size} x {factor} batches per step")
    # Evaluation batches are padded and masked, and draw per-example randomness by example index: a size
    # the devices do not divide is rounded up to one they do, and one beyond the test split is cut to it
    # (padding to a size set far too large would exhaust the memory), with the same means.
    eval_size = min(config.eval.batch_size, len(self.dataset.test))
    self.eval_batch_size = -(-eval_size // self.mesh.size) * self.mesh.size
    self.base_key = jax.random.key(config.seed)
    self.use_ema = config.train.ema_decay > 0
    self.init_fn, self.train_step, self.schedules = step_lib.from_config(
        self.task, config, self.mesh, jax.random.fold_in(self.base_key, 1))
    self.eval_step = step_lib.make_eval_step(self.task, self.mesh)
    self._samplers: dict[int, Any] = {}  # jitted samplers by number of samples (_sampler)
    self.files = RunFiles(self.workdir, jax.process_index() == 0)
    self.checkpointer = Checkpointer(self.workdir / "checkpoints", keep=config.train.keep_checkpoints,
                                     async_save=config.train.async_checkpoints, read_only=self.read_only)

  # state ------------------------------------------------------------------------------------------
  def train_iterator(self) -> data_lib.TrainIterator:
    return data_lib.TrainIterator(self.dataset.train, self.global_batch_size, self.config.data.seed,
                                  process_index=jax.process_index(), process_count=jax.process_count())

  def _init_args(self):
    # Every process reads the whole first global batch, so data-dependent init agrees across hosts.
    first = next(data_lib.TrainIterator(self.dataset.train, self.global_batch_size, self.config.data.seed))
    return jax.random.fold_in(self.base_key, 0), first

  def init_state(self) -> TrainState:
    return self.init_fn(*self._init_args())

  def restore_latest(self, set_aside_unreadable: bool = False) -> tuple[TrainState, dict] | None:
    """The newest checkpoint that restores, or None when there is none.

    A newer checkpoint that cannot be restored (damaged) is skipped with one log line; with
    `set_aside_unreadable` (training) it is moved to checkpoints_unreadable/, never deleted, so that its
    step can be saved again. When no checkpoint restores, the newest one's error is raised.
    """
    if not self.checkpointer.all_steps():
      return None
    abstract = self.init_fn.abstract(*self._init_args())
    skipped: list[CheckpointError] = []
    tried: set[int] = set()
    step = None
    while untried := sorted(set(self.checkpointer.all_steps()) - tried, reverse=True):
      newest = untried[0]
      tried.add(newest)
      try:
        state, data_state = self.checkpointer.restore(newest, abstract)
        failure = None
      except CheckpointError as e:
        failure = e
      check_processes_restored_alike(newest, None if failure is None else failure.reason,
                                     self.workdir / "checkpoints")
      if failure is None:
        step = newest
        break
      if self.checkpointer.exists(newest):
        skipped.append(failure)
      else:  # not damaged but gone: a training beside this eval or sample run rotated it away
        self.checkpointer.reload()
    if step is None:
      if skipped:
        raise skipped[0]
      return None
    for e in skipped:
      kept = f"; it is kept in {self.workdir / UNREADABLE_DIR}" if set_aside_unreadable else ""
      logging.warning("checkpoint %d cannot be restored (%s); skipped for step %d, the newest that "
                      "restores%s", e.step, e.reason, step, kept)
    if skipped and set_aside_unreadable:
      if jax.process_index() == 0:
        for e in skipped:
          self.checkpointer.set_aside(e.step)
      sync_processes("unreadable checkpoints set aside")
      self.checkpointer.reload()
    written_on = data_state.pop("topology", None)
    now_on = topology(self.config.mesh.fsdp)
    if written_on is not None and written_on != now_on:
      consequence = ("its evaluation and samples here may differ from the original layout's" if self.read_only
                     else "the run continues, and its numbers may differ from an uninterrupted run")
      logging.warning("checkpoint %d was written on %s; now on %s: %s in float32 rounding", step,
                      _describe(written_on), _describe(now_on), consequence)
    return state, data_state

  # evaluation and samples --------------------------------------------------------------------------
  def evaluate(self, state: TrainState) -> dict[str, float]:
    """Means of the task's eval metrics over the whole test split (EMA params when EMA is on)."""
    params, model_state = state.params(self.use_ema), state.model_state()
    # One key for every batch: tasks draw per-example randomness from fold_in(key, batch['index']), which no
    # other batch shares and which does not depend on the batch size or the device count.
    key = jax.random.fold_in(self.base_key, 2)
    acc = metrics_lib.Accumulator()
    for batch in data_lib.eval_batches(self.dataset.test, self.eval_batch_size, jax.process_index(),
                                       jax.process_count()):
      termination.stop_if_requested()
      acc.add(self.eval_step(params, model_state, sharding.put_batch(batch, self.mesh), key))
    return acc.means()

  def _sample_key(self, stream: int):
    """The key of the sample grids (stream 3) or the quality samples (4), moved by eval.sample_seed."""
    return sample_key(self.base_key, stream, self.config.eval.sample_seed)

  def write_samples(self, state: TrainState, step: int,
                    path: pathlib.Path | None = None) -> pathlib.Path | None:
    """samples/step_XXXXXXX.png (a .txt for text) or `path`, plus any further pictures the task draws."""
    if self.task.sample_fn is None or self.config.train.num_samples <= 0:
      return None
    key = self._sample_key(3)
    params, model_state = state.params(self.use_ema), state.model_state()
    samples = np.asarray(jax.device_get(split_samples(self._sampler(self.config.train.num_samples)(
        params, model_state, key))[0]))
    extra = {}
    if self.task.pictures_fn is not None:
      batch = self.dataset.test[np.arange(min(len(self.dataset.test), 64))]
      batch.update(index=np.arange(len(batch["x"])), mask=np.ones(len(batch["x"]), np.float32))
      if not hasattr(self, "_pictures_jit"):
        # Replicated, as the samples are: a batch split over several processes cannot be fetched by one.
        self._pictures_jit = cpu_compile.jit(
            lambda p, s, k, b: self.task.pictures_fn(self._whole(p), self._whole(s), k, b),
            out_shardings=sharding.replicated(self.mesh))
      extra = jax.device_get(self._pictures_jit(params, model_state, key, batch))
    if not self.files.is_main:
      return None
    return pictures.save_samples(path or self.files.sample_path(step), samples, self.dataset,
                                 f"{self.dataset.name}, step {step}", extra)

  def _sampler(self, n: int):
    """The jitted sampler of n samples, one per n: the sample grid and the quality chunks share it when
    their sizes agree, and it is traced once."""
    if n not in self._samplers:
      self._samplers[n] = cpu_compile.jit(
          lambda p, s, k: self.task.sample_fn(self._whole(p), self._whole(s), k, n),
          out_shardings=sharding.replicated(self.mesh))
    return self._samplers[n]

  def _whole(self, tree):
    """Parameters or statistics whole inside a jitted sampler, as the train and eval steps take them
    (sharding.gathered): sampled from the stored shards, a digits RealNVP's samples differed at
    mesh.fsdp=2 on 4 devices."""
    return sharding.gathered(tree, self.mesh)

  @functools.cached_property
  def feature_space(self) -> FeatureSpace | None:
    """The feature space of the sample-quality metrics (None: not measured for this data/task)."""
    if self.task.sample_fn is None:
      defaults.warn_unread_options(self.config, defaults.starting_configs(self.config.task)[-1],
                                   dict.fromkeys(_SAMPLE_FIELDS, "by tasks that draw samples"),
                                   f"task {self.config.task!r}, which draws no samples,")
      return None
    if self.build_feature_space is None:
      if self.config.eval.feature_space != "none":
        logging.warning("eval.feature_space=%r is not measured: this run was given no feature-space "
                        "builder (pass gm_jax.tasks.build_feature_space to loop.train / loop.evaluate)",
                        self.config.eval.feature_space)
      return None
    ev = self.config.eval
    if ev.quality_reference not in ("test", "train"):
      raise ValueError(f"eval.quality_reference must be 'test' or 'train', got {ev.quality_reference!r}")
    if ev.quality_samples < 2:
      raise ValueError(f"eval.quality_samples must be at least 2, got {ev.quality_samples}")
    if ev.quality_batch_size < 1:
      raise ValueError(f"eval.quality_batch_size must be at least 1, got {ev.quality_batch_size}")
    space = on_every_process(lambda: self.build_feature_space(self.config, self.dataset),
                             "to build the sample-quality feature space")
    if space is None:
      return None
    if ev.kid_subsets < 1 or ev.kid_subset_size < 2:
      raise ValueError(f"eval.kid_subsets={ev.kid_subsets} must be at least 1 and eval.kid_subset_size="
                       f"{ev.kid_subset_size} at least 2 (KID's unbiased estimator)")
    if ev.fd_resamples == 1 or ev.fd_resamples < 0:
      raise ValueError(f"eval.fd_resamples={ev.fd_resamples} must be 0 (no fd_std) or at least 2")
    # The samples and the data floor (as many examples of the other split) are each scored against the
    # reference; PRDC's k-th neighbour must exist in every set.
    reference = min(len(self._reference_split), ev.quality_reference_max)
    floor = min(len(self._floor_split), ev.quality_samples)
    other = "train" if ev.quality_reference == "test" else "test"
    if not 1 <= ev.inception_score_splits <= floor:
      raise ValueError(f"eval.inception_score_splits={ev.inception_score_splits} must be at least 1 and at "
                       f"most the data floor's size ({floor}: eval.quality_samples, or the {other} split's "
                       f"size)")
    if not 1 <= ev.prdc_k < min(ev.quality_samples, reference, floor):
      raise ValueError(f"eval.prdc_k={ev.prdc_k} must be at least 1 and below eval.quality_samples "
                       f"({ev.quality_samples}), the reference's size ({reference}: the "
                       f"{ev.quality_reference} split up to eval.quality_reference_max="
                       f"{ev.quality_reference_max}) and the data floor's ({floor}: the {other} split's); "
                       f"lower eval.prdc_k{_hold_out_more(self.config.data)} or set "
                       f"eval.feature_space='none'")
    return space

  @property
  def _reference_split(self):
    return self.dataset.test if self.config.eval.quality_reference == "test" else self.dataset.train_examples

  @property
  def _floor_split(self):
    return self.dataset.train_examples if self.config.eval.quality_reference == "test" else self.dataset.test

  def quality_real_sets(self, n: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The real examples samples are judged by: the reference's images and the data floor's n examples
    (up to its split's size), both fixed subsets and, when the model's data are a transform of the real
    examples, transformed as the model sees them (with fixed keys: the same sets at every evaluation)."""
    ev = self.config.eval
    reference_split, floor_split = self._reference_split, self._floor_split
    reference = reference_split[split_lib.fixed_subset(len(reference_split), ev.quality_reference_max)]["x"]
    floor = dict(floor_split[split_lib.fixed_subset(len(floor_split), n)])
    if len(floor_split) < n:
      logging.log_first_n(logging.WARNING, "the data floor has %d real examples against %d samples (all "
                          "its split holds); FD is biased upwards at small counts, so it lies above a floor "
                          "of %d", 1, len(floor_split), n, n)
    if self.task.real_as_modelled is not None:
      reference = self.task.real_as_modelled(reference, rng.fixed_key(rng.QUALITY_REFERENCE))
      floor["x"] = self.task.real_as_modelled(floor["x"], rng.fixed_key(rng.QUALITY_FLOOR))
    return reference, floor

  def sample_quality(self, state: TrainState) -> dict[str, Any]:
    """FD, KID, P/R/D/C of eval.quality_samples samples and of as many real examples (the data floor),
    both against the reference split, in the config's feature space; plus the sampler's cost."""
    space = self.feature_space
    if space is None:
      return {}
    ev = self.config.eval
    n = ev.quality_samples
    samples, sample_labels, info, seconds_per_sample = self._draw_samples(state, n)
    reference, floor = self.quality_real_sets(n)
    labels = None if sample_labels is None else (sample_labels, floor["label"])
    nonfinite = _nonfinite_share(samples, info.pop("nonfinite", None))
    if nonfinite > 0:
      logging.warning("%.2f%% of the samples hold non-finite values: their sample-quality metrics are NaN",
                      100 * nonfinite)
    result = quality_report.report(space, samples, reference, floor["x"], kid_subsets=ev.kid_subsets,
                                   kid_subset_size=ev.kid_subset_size, prdc_k=ev.prdc_k,
                                   inception_score_splits=ev.inception_score_splits,
                                   fd_resamples=ev.fd_resamples, labels=labels, nonfinite_fraction=nonfinite)
    if self.files.is_main:  # after the report, so that a failed one leaves no picture without its numbers
      step = int(state.step)
      shown = samples if sample_labels is None else samples[quality_report.round_robin(sample_labels)]
      if self.read_only:
        with claimed_unused_path(self.files.sample_path(step, "eval_quality_")) as path:
          pictures.save_judged_samples(path, shown, self.dataset)
      else:
        pictures.save_judged_samples(self.files.sample_path(step, "quality_"), shown, self.dataset)
    return {**result, **info, "sample_ms_per_1000": 1e6 * seconds_per_sample}

  def _draw_samples(self, state: TrainState, n: int):
    """(samples, labels, info, seconds per sample): n samples drawn in compiled chunks of
    eval.quality_batch_size; a class-conditional model's chunks rounded up to a multiple of the class
    count, and the samples kept every class as often, give or take one (their labels; else None); info's
    per-sample arrays (e.g. `nonfinite`) taken for the samples kept, its scalars (e.g. nfe) averaged over
    the chunks, each weighted by the samples kept from it; the seconds per sample drawn after compilation
    (the surplus was timed too), their copies to the host included."""
    chunk = min(n, self.config.eval.quality_batch_size)
    classes = self.config.model.num_classes if self.task.sample_labels is not None else 0
    if classes:  # each chunk draws every class equally often
      chunk = -(-chunk // classes) * classes
    params, model_state = state.params(self.use_ema), state.model_state()
    key = self._sample_key(4)
    draw = self._sampler(chunk).lower(params, model_state, key).compile()  # compiled before the clock starts
    start, on_host, num_chunks = time.perf_counter(), [], -(-n // chunk)
    in_flight = DispatchWindow()
    for i in range(num_chunks):
      termination.stop_if_requested()
      finished = in_flight.add(draw(params, model_state, jax.random.fold_in(key, i)))
      # Each finished chunk goes to the host while later ones are drawn: the FID protocol's 50,000 samples
      # of 64 x 64 images are 2.5 GB of int32 levels, which the devices need not hold together.
      if finished is not None:
        on_host.append(self._chunk_on_host(finished))
    on_host += [self._chunk_on_host(o) for o in in_flight.drain()]
    seconds = time.perf_counter() - start
    drawn, infos = zip(*on_host)
    labels = None
    if classes:
      labels = np.concatenate([self.task.sample_labels(chunk)] * num_chunks)
      keep = quality_report.balanced_subset(labels, n, classes)
      labels = labels[keep]
    else:
      keep = np.arange(n)
    kept = np.bincount(keep // chunk, minlength=num_chunks)
    info = {}
    for name in infos[0]:
      if np.ndim(infos[0][name]):
        info[name] = np.concatenate([np.asarray(i[name]) for i in infos])[keep]
      else:
        info[name] = float(sum(w * float(i[name]) for w, i in zip(kept, infos)) / n)
    samples = np.concatenate([np.asarray(x) for x in drawn])[keep]
    return samples, labels, info, seconds / (num_chunks * chunk)

  def _chunk_on_host(self, drawn) -> tuple[np.ndarray, dict[str, Any]]:
    """A drawn chunk's (samples, info) on the host, an image's integer levels as uint8 where they fit (as
    the data hold them): a quarter of int32's memory (the FID protocol's 50,000 samples of 64 x 64 images:
    614 MB), and the digits classifier, compiled for the real images' uint8, is not compiled again for
    int32."""
    samples, info = jax.device_get(split_samples(drawn))
    if (self.dataset.spec.kind == "image" and np.issubdtype(samples.dtype, np.integer)
        and samples.min(initial=0) >= 0 and samples.max(initial=0) <= 255):
      samples = samples.astype(np.uint8)
    return samples, info

  @functools.cached_property
  def data_floor(self) -> dict[str, float]:
    """The entropy floor of data with a known distribution (computed once; {} for other data)."""
    return ledger.data_floor(self.dataset, self.config.data.seed + 7)

  def likelihood_report(self, means: dict[str, float]) -> dict[str, Any]:
    """The ledger entry the task's Likelihood names, the data floor beside it, the task's own fields."""
    extra = self.task.summarize(means) if self.task.summarize is not None else {}
    likelihood = self.task.likelihood
    if likelihood is None:
      return {"estimator": None, **extra}
    reported = {**means, **extra}
    if likelihood.metric not in reported:
      raise ValueError(f"the task's Likelihood names the metric {likelihood.metric!r}, which its eval_fn and "
                       f"summarize do not report (they report {sorted(reported)})")
    nll = reported[likelihood.metric]
    entry = ledger.likelihood_entry(nll, likelihood.num_dims, likelihood.estimator, likelihood.discrete,
                                    likelihood.likelihood_of)
    return {**entry, **self.data_floor, **extra}

  def summary(self, state: TrainState) -> dict[str, Any]:
    means = self.evaluate(state)
    return {"step": int(state.step), **means, **self.likelihood_report(means), **self.sample_quality(state)}

  # guard ---------------------------------------------------------------------------------------------
  def kept_checkpoint(self) -> str:
    kept = self.checkpointer.latest_step()
    if kept is None:
      return "no checkpoint was written, so a rerun starts afresh"
    return f"last good checkpoint: step {kept}"

  def check_finite(self, state: TrainState) -> None:
    bad_step = int(state.nonfinite_step)  # the state's step count when the update failed
    if bad_step >= 0:
      name = step_lib.guard_names(self.task)[int(state.nonfinite_metric)]
      # Numbered as the metrics and checkpoints number steps: the update that would have made it step + 1.
      raise NonFiniteError(f"non-finite {name} at step {bad_step + 1}; the update was not applied and the "
                           f"run stopped; {self.kept_checkpoint()} (lower the learning rate or enable "
                           f"optim.grad_clip_norm, in a new --workdir)")

  def check_savable(self, state: TrainState) -> None:
    """Raises unless the guard is clear and every float in the state is finite: never save a NaN state."""
    self.check_finite(state)
    if not all_finite(state.networks):
      raise NonFiniteError(f"the state at step {int(state.step)} holds non-finite values and was not saved; "
                           f"the run stopped; {self.kept_checkpoint()}")


@jax.jit
def _leaf_finite(x: jax.Array) -> jax.Array:
  return jnp.all(jnp.isfinite(x))


def all_finite(tree) -> bool:
  """Whether every float in `tree` is finite. One small program per array shape and sharding, compiled
  once per process: one program over the whole tree was compiled anew for every model (a U-Net's took
  1.7 s: one reduction per parameter array), and concatenating the arrays into one would gather sharded
  parameters onto every device. Each check is read before the next is sent: hundreds of sharded checks in
  flight at once stalled XLA:CPU's collectives (an FSDP U-Net aborted on a rendezvous timeout). The cost, at
  log and checkpoint steps only: 19 against 9 ms for 400 arrays on a 2-core CPU."""
  return all(bool(_leaf_finite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact))


# Finished steps' metrics are read from the devices in bunches of this many (a read per step cost the
# toy2d steps about 10 %).
_FINISHED_STEPS_READ_AT = 256
# What a task without a sampler leaves unread (the sample-quality fields that :tiny sizes change aside).
_SAMPLE_FIELDS = ("train.num_samples", "train.sample_every", "eval.feature_space", "eval.sample_seed")
_SAMPLE_SEED_BRANCH = 100  # base_key's branches from 100 on hold the keys of eval.sample_seed > 0


def sample_key(base_key: jax.Array, stream: int, seed: int) -> jax.Array:
  """The key of a sampling stream (3: sample grids, 4: quality samples; the run's others are 0: init,
  1: train steps, 2: eval) for eval.sample_seed `seed`. Seed 0 is the stream's key itself; another seed's
  key comes from a branch of base_key that nothing else draws from. It may not be fold_in(stream key,
  seed): with JAX's partitionable threefry (its default) split(k, n)[i] is fold_in(k, i), so seed 1's
  initial noise would be the noise seed 0's sampler draws at its first step, and its quality chunk i the
  chunk i + 1 of seed 0."""
  if not seed:
    return jax.random.fold_in(base_key, stream)
  return jax.random.fold_in(jax.random.fold_in(base_key, _SAMPLE_SEED_BRANCH + stream), seed)


def _nonfinite_share(samples: np.ndarray, flags: np.ndarray | None) -> float:
  """The fraction of samples holding a non-finite value: counted for floating-point samples; for samples
  that the sampler rounded to integer levels, from the flags it reported (info's `nonfinite`)."""
  if np.issubdtype(samples.dtype, np.floating):
    return float(np.mean(~np.isfinite(samples.reshape(len(samples), -1)).all(axis=1)))
  return float(np.mean(flags)) if flags is not None else 0.0


class _StepTimer:
  """Wall time of the train steps since the last lap, without the time spent in `paused(state)` blocks."""

  def __init__(self, step: int):
    self.step, self.start, self.excluded = step, time.perf_counter(), 0.0

  @contextlib.contextmanager
  def paused(self, state):
    jax.block_until_ready(state)  # the steps dispatched before the pause still count as step time
    start = time.perf_counter()
    try:
      yield
    finally:
      self.excluded += time.perf_counter() - start

  def lap(self, step: int) -> tuple[int, float]:
    """(steps, seconds) since the last lap; starts the next."""
    now = time.perf_counter()
    lap = (step - self.step, now - self.start - self.excluded)
    self.step, self.start, self.excluded = step, now, 0.0
    return lap


def _log_train(exp: Experiment, step: int, acc: metrics_lib.Accumulator, examples: int, seconds: float,
               bar) -> None:
  values = acc.means()
  if examples:  # none when the row holds only the process's first step
    values["examples_per_sec"] = examples / max(seconds, 1e-9)
  for name, schedule in exp.schedules.items():
    values[step_lib.metric_name(exp.task, name, "learning_rate")] = float(schedule(step - 1))
  exp.files.log(step, "train", values)
  loss_key = step_lib.metric_name(exp.task, step_lib.update_labels(exp.task)[0], "loss")
  loss_key = loss_key if loss_key in values else None
  bar.set_postfix({"loss": f"{values[loss_key]:.4f}" if loss_key else "-",
                   "ex/s": f"{values['examples_per_sec']:.0f}" if examples else "-"})
  acc.reset()


def prepare_workdir(exp: Experiment) -> tuple[TrainState, Any, dict]:
  """Fresh state, or the latest checkpoint when the workdir holds the same run (after check_workdir); with
  the data iterator and the training log's open window ({"sums": Accumulator.sums()})."""
  iterator = exp.train_iterator()
  restored = exp.restore_latest(set_aside_unreadable=True)
  if restored is None:
    state = exp.init_state()  # first: a config that cannot build leaves no config.json to block its fix
    exp.files.truncate_metrics(-1)
    exp.files.write_config(config_to_dict(exp.config))
    return state, iterator, {"sums": {}}
  state, data_state = restored
  exp.checkpointer.keep_newest(exp.config.train.keep_checkpoints)
  step = int(state.step)
  window = data_state.pop("log_window", {"sums": {}})  # absent from older checkpoints
  iterator.set_state(data_state)
  redo_test = step == exp.config.train.num_steps or "eval" in window.get("unfinished", [])
  exp.files.truncate_metrics(step, redo_test)
  logging.info("resumed from step %d", step)
  return state, iterator, window


def train(config, workdir: str, build_task: TaskBuilder,
          build_feature_space: FeatureSpaceBuilder | None = None,
          after_step: Callable[[int], None] | None = None) -> dict[str, Any]:
  """Trains `config` in `workdir` (resuming if it holds a checkpoint) and returns summary.json's dict.

  after_step(step) runs right after each step is dispatched (tests inject faults through it).
  """
  workdir = run_directory(workdir)
  # First: a process that stopped alone would leave the rest waiting.
  check_processes_agree(config, workdir, "train")
  check_config(config)
  check_workdir_outside_data(config, workdir)
  made = jax.process_index() == 0 and not workdir.exists()
  was_empty = made or (jax.process_index() == 0 and workdir.is_dir() and not any(workdir.iterdir()))
  lock = lock_workdir(workdir)
  try:
    return _train_locked(Experiment(config, workdir, build_task, build_feature_space), after_step)
  except BaseException:
    if was_empty:
      remove_if_unused(workdir, keep_directory=not made)
    raise
  finally:
    lock.release()


def _train_locked(exp: Experiment, after_step: Callable[[int], None] | None) -> dict[str, Any]:
  config = exp.config
  tc = config.train
  bar = None
  try:
    eval_changes = check_workdir(exp)
    finished = finished_summary(exp)
    if finished is not None:
      return finished  # a rerun of a finished run changes nothing (no second final eval or row)
    exp.feature_space  # fails before anything is written if the feature network or its weights are missing
    state, iterator, window = prepare_workdir(exp)
    step = int(state.step)
    # The log window a checkpoint cut (checkpoint_every need not be a multiple of log_every) goes on.
    acc = metrics_lib.Accumulator(window["sums"])
    # The steps' metrics are read from the devices at log and checkpoint steps, and in between in bunches
    # of steps that have finished (held any longer, a long log window's would fill the host's memory).
    in_flight, finished = DispatchWindow(), []

    def flush_pending(unfinished_too: bool = True):
      """Adds the metrics read so far to the log window (`unfinished_too`: all, waiting for the last
      steps)."""
      for m in jax.device_get(finished + (in_flight.drain() if unfinished_too else [])):
        acc.add(m)
      finished.clear()

    bar = tqdm.tqdm(total=tc.num_steps, initial=step, disable=not (exp.files.is_main and tc.progress_bar),
                    dynamic_ncols=True, desc="train")
    # examples_per_sec counts the steps this process ran since the last log row, over their time without
    # the evaluations, samples and checkpoints between them (a resumed window's earlier steps ran in
    # another process, whose time is not known here), and without the process's first step, which
    # compiles the program.
    timer, first_step = _StepTimer(step), True

    def save_checkpoint(unfinished: tuple[str, ...] = ()):
      """unfinished: the step's evaluation and samples, when SIGTERM stops the run before them."""
      flush_pending()
      with timer.paused(state):
        exp.check_savable(state)
        exp.checkpointer.save(step, state, {
            **iterator.get_state(), "topology": topology(exp.config.mesh.fsdp),
            "log_window": {"sums": acc.sums(), "unfinished": list(unfinished)}})

    def stop_at_step(unfinished: tuple[str, ...] = (), saved: bool = False):
      """Saves the step reached (unless `saved`), its evaluation and samples left to the rerun, and exits
      143."""
      if not saved:
        save_checkpoint(unfinished)
      exp.checkpointer.wait()
      logging.warning("stopped by SIGTERM at step %d, its checkpoint written; rerun the same command to "
                      "resume", step)
      raise termination.Stopped()

    def evaluate_and_sample(evaluates: bool, samples: bool, saved: bool):
      """saved: the step has its checkpoint already (else SIGTERM here saves one before stopping)."""
      try:
        with termination.deferred(False):  # a long evaluation stops at once
          if evaluates or samples:
            exp.check_finite(state)  # a failed update stops the run here, not at the next log row
          if evaluates:
            with timer.paused(state):
              exp.files.log(step, "test", exp.evaluate(state))
            evaluates = False
          if samples:
            with timer.paused(state):
              exp.write_samples(state, step)
      except termination.Stopped:
        if not saved:
          stop_at_step(("eval",) * evaluates + ("samples",) * samples)
        raise

    unfinished = window.get("unfinished", [])  # by a run that SIGTERM stopped at this step
    evaluate_and_sample("eval" in unfinished, "samples" in unfinished, saved=True)
    # SIGTERM is only recorded from here to the last step, except in the evaluations: a signal between two
    # steps' protected parts raised at once, and the steps since the last checkpoint were lost.
    with termination.deferred():
      while step < tc.num_steps:
        batch = sharding.put_batch(next(iterator), exp.mesh)
        state, step_metrics = exp.train_step(state, batch)
        done = in_flight.add(step_metrics)
        if done is not None:
          finished.append(done)
          if len(finished) == _FINISHED_STEPS_READ_AT:
            flush_pending(unfinished_too=False)
        step += 1
        bar.update(1)
        if after_step is not None:
          after_step(step)
        if first_step:
          jax.block_until_ready(state)
          timer, first_step = _StepTimer(step), False
        is_last = step == tc.num_steps
        if step % tc.log_every == 0 or is_last:
          flush_pending()
          exp.check_finite(state)
          steps, seconds = timer.lap(step)
          with timer.paused(state):  # the first row also opens the TensorBoard file (about 2 s)
            _log_train(exp, step, acc, steps * exp.global_batch_size, seconds, bar)
        evaluates = bool(tc.eval_every and step % tc.eval_every == 0 and not is_last)
        samples = bool(tc.sample_every and step % tc.sample_every == 0 and not is_last)
        if termination.requested(step):  # the step's evaluation and samples (which may take long) are left
          stop_at_step(("eval",) * evaluates + ("samples",) * samples)  # to the rerun
        evaluate_and_sample(evaluates, samples, saved=False)
        if (tc.checkpoint_every and step % tc.checkpoint_every == 0) or is_last:
          save_checkpoint()
          if termination.received():
            stop_at_step(saved=True)
    exp.checkpointer.wait()
    summary = exp.summary(state)
    exp.files.log(step, "test", {k: v for k, v in summary.items() if k != "step"})
    if eval_changes:  # the final evaluation's settings, where they differ from the training's config.json
      summary["eval_config_changes"] = eval_changes
    exp.write_samples(state, step)
    exp.files.write_summary(summary)
    return summary
  finally:
    if bar is not None:
      bar.close()
    exp.checkpointer.close()
    exp.files.close()


def _hold_out_more(data_config) -> str:
  """How this data source holds out more test examples (advice of an error; none for a fixed split)."""
  if data_config.name == "toy2d":
    return ", draw more test points (data.num_test)"
  if data_config.name in ("image_folder", "npz", "text", "markov"):
    return ", hold out more examples (data.test_fraction)"
  return ""


def restored_experiment(config, workdir: str, build_task: TaskBuilder,
                        build_feature_space: FeatureSpaceBuilder | None, mode: str = "eval"
                        ) -> tuple[Experiment, TrainState, dict]:
  """A trained workdir's Experiment (its checkpointer open: the caller closes it), latest state and the
  eval.* settings that differ from its config.json; any other difference is refused."""
  workdir = run_directory(workdir)
  check_processes_agree(config, workdir, mode)
  check_eval_fields(config)
  changes = check_eval_workdir(config, workdir)
  on_every_process(lambda: check_writable(workdir, mode) if jax.process_index() == 0 else None,
                   "to check the workdir")
  exp = Experiment(config, workdir, build_task, build_feature_space, read_only=True)
  try:
    restored = exp.restore_latest()
    if restored is None:
      raise FileNotFoundError(f"no checkpoint in {exp.workdir / 'checkpoints'}; train first (--mode=train)")
    # Data changed under the same data.path (a corpus whose vocabulary is another) is refused as on resume.
    exp.train_iterator().set_state(restored[1])
  except BaseException:
    exp.checkpointer.close()
    raise
  return exp, restored[0], changes


def evaluate(config, workdir: str, build_task: TaskBuilder,
             build_feature_space: FeatureSpaceBuilder | None = None) -> dict[str, Any]:
  """Evaluates the latest checkpoint on the test split; writes eval_step_XXXXXXX.json (never summary), or
  eval_step_XXXXXXX_2.json and so on when an earlier evaluation of that step has its file.

  eval.* settings may differ from training's; the result lists them under `eval_config_changes`.
  """
  exp, state, changes = restored_experiment(config, workdir, build_task, build_feature_space)
  try:
    exp.feature_space  # its settings are refused before the test split's pass, which can take hours
    result = exp.summary(state)
    if changes:
      result["eval_config_changes"] = changes
    if exp.files.is_main:
      with claimed_unused_path(exp.workdir / f"eval_step_{result['step']:07d}.json") as path:
        write_json_atomic(path, result)
    return result
  finally:
    exp.checkpointer.close()


def sample(config, workdir: str, build_task: TaskBuilder) -> dict[str, Any]:
  """Writes a sample grid from the latest checkpoint to samples/sample_run_step_XXXXXXX.png, or
  sample_run_step_XXXXXXX_2.png and so on beside an earlier or concurrent sample run's; returns
  {"samples": the file written} and, when eval.* settings differ from training's, `eval_config_changes`."""
  exp, state, changes = restored_experiment(config, workdir, build_task, None, "sample")
  if changes:
    logging.warning("sampling with eval settings changed since training: %s", ", ".join(changes))
  try:
    if exp.task.sample_fn is None:
      raise ValueError(f"task {config.task!r} draws no samples; --mode=sample needs a generative model")
    if config.train.num_samples < 1:
      raise ValueError(f"this run was trained with train.num_samples={config.train.num_samples}, the size of "
                       f"its sample grid: it draws no samples")
    step = int(state.step)
    with contextlib.ExitStack() as stack:
      path = exp.files.sample_path(step, "sample_run_")
      if exp.files.is_main:  # the name is taken before the drawing, which a run beside this one may share
        path = stack.enter_context(claimed_unused_path(path))
      # Process 0 writes the file (and chose its name); every process reports it.
      written = exp.write_samples(state, step, path)  # None on the other processes
      result = {"samples": pathlib.Path(text_of_process_0(str(written)))}
    return {**result, "eval_config_changes": changes} if changes else result
  finally:
    exp.checkpointer.close()
