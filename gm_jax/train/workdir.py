"""What a workdir may hold before a run uses it: the checks that keep one run's files from another's
(refused in one line, before anything is written), the workdir's lock, and the clean-up of a launch that
failed before it wrote anything."""

from __future__ import annotations

import json
import pathlib
import tempfile
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from gm_jax.train.config_checks import (changes_only_evaluation, config_differences, config_to_dict,
                                        described_differences, field_value)
from gm_jax.train.run_files import RunFiles, WorkdirLock, read_json_object

if TYPE_CHECKING:
  from gm_jax.train.loop import Experiment


class WorkdirConflictError(RuntimeError):
  """The workdir holds another run's files or cannot be used; raised before anything is written there."""


def run_directory(workdir: str | pathlib.Path) -> pathlib.Path:
  """The workdir as a path; an empty one (an unset shell variable) is refused, since it would put the
  run's files into the current directory."""
  if not str(workdir).strip():
    raise ValueError("--workdir is empty: pass the run's own directory (e.g. --workdir=/tmp/run); an empty "
                     "one would write the run's files into the current directory")
  return pathlib.Path(workdir).expanduser()  # --workdir=~/run: the shell leaves a ~ after = unexpanded


def check_workdir_outside_data(config, workdir: pathlib.Path) -> None:
  """Refuses a workdir in the folder of images it would train on: its samples would join the data (and a
  later launch would read them as images)."""
  path = config.data.get("path")
  if not path:
    return
  data, inside = pathlib.Path(path).expanduser().resolve(), workdir.expanduser().resolve()
  if data.is_dir() and (inside == data or data in inside.parents):
    raise WorkdirConflictError(f"workdir {workdir} lies inside data.path {path}, so the run's files would "
                               f"join the data; use a --workdir outside it")


def lock_workdir(workdir: pathlib.Path) -> WorkdirLock:
  """Creates `workdir` and takes its lock on process 0; every process raises one line if that failed."""
  lock = WorkdirLock(workdir)
  status, reason = 0, ""
  if jax.process_index() == 0:
    try:
      if workdir.exists() and not workdir.is_dir():
        status, reason = 2, "is a file, not a directory"
      else:
        workdir.mkdir(parents=True, exist_ok=True)
        status = 0 if lock.acquire() else 1
    except OSError as e:  # a read-only file system, no permission, ...
      status, reason = 2, f"cannot be written ({e.strerror or e})"
  if jax.process_count() > 1:  # the other processes learn process 0's outcome instead of hanging
    from jax.experimental import multihost_utils

    status = int(multihost_utils.broadcast_one_to_all(np.int32(status)))
  if status == 1:
    raise WorkdirConflictError(f"workdir {workdir} is in use by another run (it holds {lock.path}); wait "
                               f"for that run to end or use a new --workdir")
  if status == 2:
    raise WorkdirConflictError(f"workdir {workdir} {reason or 'cannot be used (see process 0)'}; "
                               f"use another --workdir")
  return lock


def remove_if_unused(workdir: pathlib.Path, keep_directory: bool) -> None:
  """Removes what a launch into a new or empty workdir left when it holds nothing but the lock and an empty
  checkpoints/ (a launch that failed while building its data or task leaves no trace): the workdir too
  unless it existed before (keep_directory). Runs while the lock is held, so a launch into the same workdir
  meanwhile fails as "in use" or starts its own lock file."""
  checkpoints = workdir / "checkpoints"
  try:
    if {p.name for p in workdir.iterdir()} <= {WorkdirLock.NAME, checkpoints.name} and not (
        checkpoints.is_dir() and any(checkpoints.iterdir())):
      (workdir / WorkdirLock.NAME).unlink(missing_ok=True)
      if checkpoints.is_dir():
        checkpoints.rmdir()
      if not keep_directory:
        workdir.rmdir()
  except OSError:  # something appeared meanwhile: leave it
    pass


def check_workdir(exp: Experiment) -> dict[str, dict[str, Any]]:
  """Refuses a workdir that holds another run (a different config.json, or results without one) or a
  finished run's results without the checkpoint they came from, which training again would overwrite.

  Evaluation settings (eval.*, data.eval_stride) may differ once the training has reached its last step
  and only its final evaluation is left (one that failed on such a setting), or when the summary.json
  written then lists the same changes (a rerun of the command that finished it); returns those changes as
  {field: {"stored": value, "now": value}}, empty otherwise.
  """
  stored = exp.files.read_config()
  latest = exp.checkpointer.latest_step()
  summary_path = exp.workdir / "summary.json"
  if stored is not None:
    now = config_to_dict(exp.config)
    diffs = config_differences(stored, now)
    if diffs:
      only_eval = all(changes_only_evaluation(d) for d in diffs)
      changes = value_changes(diffs, stored, now)
      if only_eval and latest == exp.config.train.num_steps and (
          not summary_path.exists() or _summary_changes(summary_path) == changes):
        return changes
      # Evaluation settings may change in --mode=eval / sample at any time.
      other_eval = ", or --mode=eval for other evaluation settings" if only_eval else ""
      raise WorkdirConflictError(f"workdir {exp.workdir} holds a run with a different config "
                                 f"({described_differences(diffs, stored, now)}); use a new --workdir or "
                                 f"the stored values{other_eval}")
    if latest is None and summary_path.exists():
      raise WorkdirConflictError(f"workdir {exp.workdir} holds a finished run's summary.json but no "
                                 f"checkpoint to resume from; use a new --workdir (training here would "
                                 f"overwrite it)")
  else:
    # A fresh run starts its metrics.jsonl and TensorBoard events anew and writes samples/: whatever of
    # those is there belongs to something else (another program, a run whose config.json was removed).
    results = (["checkpoints"] if latest is not None else []) + [
        name for name in ("summary.json", "metrics.jsonl", "tensorboard", "samples")
        if (exp.workdir / name).exists()]
    if results:
      raise WorkdirConflictError(f"workdir {exp.workdir} holds results without a config.json "
                                 f"({', '.join(results)}); use a new --workdir")
  return {}


def _summary_changes(path: pathlib.Path) -> Any:
  """The evaluation settings a finished run's summary.json lists as changed since training (None if
  unreadable: then they are not known to match)."""
  try:
    return json.loads(path.read_text()).get("eval_config_changes", {})
  except (OSError, ValueError, AttributeError):
    return None


def finished_summary(exp: Experiment) -> dict[str, Any] | None:
  """summary.json's dict when the workdir's run is complete (its last checkpoint is the final step)."""
  path = exp.workdir / "summary.json"
  if path.exists() and exp.checkpointer.latest_step() == exp.config.train.num_steps:
    return read_json_object(path, "delete it and rerun the same command to write the final evaluation "
                                  "again")
  return None


def check_eval_workdir(config, workdir: pathlib.Path) -> dict[str, dict[str, Any]]:
  """Checks, without writing anything, that eval/sample can use `workdir` with `config`.

  The workdir must hold a checkpoint, and `config` may differ from the stored config.json only inside
  `eval` (sample counts, samplers, likelihood estimators); returns those differences as
  {field: {"stored": value, "now": value}}.
  """
  directory = workdir / "checkpoints"
  if not directory.is_dir() or not any(p.name.isdigit() for p in directory.iterdir()):
    raise FileNotFoundError(f"no checkpoint in {directory}; train first (--mode=train)")
  stored = RunFiles(workdir, is_main=False).read_config()
  if stored is None:
    raise WorkdirConflictError(f"workdir {workdir} holds checkpoints without a config.json; cannot check "
                               f"that they belong to this config")
  now = config_to_dict(config)
  diffs = config_differences(stored, now)
  outside = [d for d in diffs if not changes_only_evaluation(d)]
  if outside:
    raise WorkdirConflictError(f"workdir {workdir} was trained with a different config "
                               f"({described_differences(outside, stored, now)}); only eval.* and "
                               f"data.eval_stride may change after training: pass the stored config.json's "
                               f"values")
  return value_changes(diffs, stored, now)


def value_changes(diffs: list[str], stored: dict, now: dict) -> dict[str, dict[str, Any]]:
  """{field: {"stored": value, "now": value}} for the differing fields, as results list them."""
  return {d: {"stored": field_value(stored, d), "now": field_value(now, d)} for d in diffs}


def check_writable(workdir: pathlib.Path, mode: str) -> None:
  """Refuses a workdir (or its samples/) that cannot be written before an evaluation or sampling that
  would only find out when it writes its result, hours later on a large test split. A missing samples/ is
  left to its writers, who make it in the workdir checked first, so that a failed run leaves none behind."""
  for directory in (workdir, workdir / "samples"):
    if not directory.is_dir():
      continue
    try:
      tempfile.TemporaryFile(dir=directory).close()
    except OSError as e:
      raise WorkdirConflictError(f"{directory} cannot be written ({e.strerror or e}); --mode={mode} writes "
                                 f"its results there: make it writable, or copy the run to a --workdir "
                                 f"that is") from None
