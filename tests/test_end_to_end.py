"""The launcher end to end: files written, SIGKILL + rerun resumes exactly, bad input fails clearly."""

import dataclasses
import json
import pathlib
import re
import shutil
import signal
import subprocess
import time

import jax
import numpy as np
import pytest

from gm_jax import data as data_lib
from gm_jax import tasks
from gm_jax.train import command_line, config_checks, loop, optim, run_files
from gm_jax.train.run_files import event_of, read_event_records
from gm_jax.train.workdir import WorkdirConflictError, check_workdir
from tests.conftest import (CONFIGS, KILL_AT_STEP, assert_runs_close, final_params, load_config, run_main,
                            run_metrics, without_wall_clock, xla_flags)

TINY = f"--config={CONFIGS / 'toy2d_gmm.py'}:tiny"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted")
  run_main(TINY, f"--workdir={workdir}")
  return workdir


def test_run_writes_every_file(uninterrupted):
  w = uninterrupted
  assert json.loads((w / "config.json").read_text())["task"] == "gmm"
  summary = json.loads((w / "summary.json").read_text())
  assert summary["step"] == 40 and summary["estimator"] == "exact"
  assert {"nll_nats", "entropy_nats", "data_nll_nats"} <= set(summary)
  records = run_metrics(w)
  assert [r["step"] for r in records if r["split"] == "train"] == [10, 20, 30, 40]
  assert [r["step"] for r in records if r["split"] == "test"] == [20, 40]
  assert sorted(p.name for p in (w / "samples").iterdir()) == ["step_0000020.png", "step_0000040.png"]
  assert list((w / "tensorboard").glob("events.out.tfevents.*"))
  assert sorted(int(p.name) for p in (w / "checkpoints").iterdir() if p.name.isdigit()) == [20, 30, 40]


def test_sigkill_then_rerun_ends_exactly_like_the_uninterrupted_run(uninterrupted, tmp_path):
  workdir = tmp_path / "killed"
  proc = run_main("25", TINY, f"--workdir={workdir}", script=KILL_AT_STEP, check=False)
  assert proc.returncode == -signal.SIGKILL
  assert not (workdir / "summary.json").exists()
  run_main(TINY, f"--workdir={workdir}")
  assert without_wall_clock(json.loads((workdir / "summary.json").read_text())) == without_wall_clock(
      json.loads((uninterrupted / "summary.json").read_text()))
  assert run_metrics(workdir) == run_metrics(uninterrupted)
  resumed, straight = final_params(workdir), final_params(uninterrupted)
  for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(straight)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("when,checkpoints,rerun", [
    ("20:TERM", ["10", "20"], False), ("25:TERM", ["10", "20", "25"], True),
    ("20:TERM:eval", ["10", "20"], True), ("30:TERM:save", ["10", "20", "30"], False),
    ("25:TERM:between", ["10", "20", "25"], False)])
def test_sigterm_saves_the_step_reached_then_stops_and_the_rerun_ends_as_if_uninterrupted(
    uninterrupted, tmp_path, when, checkpoints, rerun):
  """SIGTERM (preemption, timeout) during the steps: a checkpoint of the step reached, then exit 143.
  Python's default ended the process at once, losing the steps since the last checkpoint and leaving a
  checkpoint being written as a temporary directory the next run discards. At step 20, which evaluates
  and draws samples, it stops before them, as it does in step 20's evaluation, whose rerun does them; at
  25 the checkpoint is of a step between log rows. In step 20's evaluation, before its checkpoint, as step
  30's checkpoint began, or after step 25 as the trainer asked whether to stop, it had stopped at once
  (the steps since the last checkpoint lost; the reruns of a periodic checkpoint's step and of step 25's
  are any resumed run's)."""
  step = int(when.split(":")[0])
  proc = run_main(when, TINY, f"--workdir={tmp_path}", script=KILL_AT_STEP, check=False)
  assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-2000:]
  assert f"stopped by SIGTERM at step {step}, its checkpoint written" in proc.stderr
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == checkpoints
  if rerun:
    run_main(TINY, f"--workdir={tmp_path}")
    assert run_metrics(tmp_path) == run_metrics(uninterrupted)
    pictures = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert pictures == ["step_0000020.png", "step_0000040.png"]


def test_rerun_of_a_finished_run_changes_nothing(uninterrupted, tmp_path):
  workdir = tmp_path / "again"
  shutil.copytree(uninterrupted, workdir)
  before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
  proc = run_main(TINY, f"--workdir={workdir}")
  printed = json.loads(proc.stdout[proc.stdout.index("{"):])
  assert printed == json.loads((workdir / "summary.json").read_text())
  # No second final evaluation row in metrics.jsonl, no new TensorBoard file, no file touched.
  assert {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()} == before


def test_a_checkpoint_inside_a_log_window_resumes_that_window(uninterrupted, tmp_path):
  """Checkpoints at 15 and 30 with rows every 10 steps: killed at 25, the rerun's row at 20 still averages
  steps 11-20, and every row equals the uninterrupted run's. The rerun may keep checkpoints otherwise
  (fewer, at other steps, synchronously: it was refused as another config)."""
  killed = tmp_path / "killed"
  run_main("25", TINY, f"--workdir={killed}", "--config.train.checkpoint_every=15",
           "--config.train.keep_checkpoints=5", script=KILL_AT_STEP, check=False)
  assert sorted(int(p.name) for p in (killed / "checkpoints").iterdir() if p.name.isdigit()) == [15]
  run_main(TINY, f"--workdir={killed}", "--config.train.checkpoint_every=7",
           "--config.train.keep_checkpoints=1", "--config.train.async_checkpoints=False")
  assert run_metrics(killed) == run_metrics(uninterrupted)  # checkpointed every 10 steps
  assert sorted(int(p.name) for p in (killed / "checkpoints").iterdir() if p.name.isdigit()) == [40]


def test_a_run_resumed_keeping_fewer_checkpoints_deletes_the_rest_before_its_first_step(tmp_path):
  # Orbax deleted them only after the next save succeeded, which is what a full disk stops.
  config = load_config("toy2d_gmm", "tiny")
  config.train.update(checkpoint_every=5, keep_checkpoints=5, async_checkpoints=False, progress_bar=False)

  class Stopped(Exception):
    pass

  def stop_at_17(step):
    if step == 17:
      raise Stopped()

  def checkpoints():
    return sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())

  with pytest.raises(Stopped):
    tasks.train(config, str(tmp_path), after_step=stop_at_17)
  assert checkpoints() == [5, 10, 15]
  config.train.keep_checkpoints = 1
  at_first_step = []
  tasks.train(config, str(tmp_path),
              after_step=lambda step: step == 16 and at_first_step.append(checkpoints()))
  assert at_first_step == [[15]]


def test_throughput_counts_only_the_steps_this_process_ran_without_evaluations(tmp_path, monkeypatch):
  """Steps that take at least 50 ms each: no examples_per_sec row may exceed batch / 50 ms. A resumed
  window counted the killed process's steps over the new process's time (5x too fast here), and the
  evaluations, samples and checkpoints between rows counted as step time. Neither each process's first
  step (standing in for the compilation, 1 s here) nor its first log row (which opens the TensorBoard
  file: 1 s here) is counted: the rows stay above half the ceiling (below a third with either)."""
  log, opened = run_files.RunFiles.log, set()

  def slow_first_log(files, *args, **kwargs):
    if id(files) not in opened:
      opened.add(id(files))
      time.sleep(1.0)
    return log(files, *args, **kwargs)

  monkeypatch.setattr(run_files.RunFiles, "log", slow_first_log)
  config = load_config("toy2d_gmm", "tiny")
  config.train.update(checkpoint_every=15, progress_bar=False)
  ceiling = config.data.batch_size / 0.05

  def slow(stop_at=None):
    first = []

    def after_step(step):
      time.sleep(0.05 if first else 1.0)
      first.append(step)
      if step == stop_at:
        raise InterruptedError("stopped")
    return after_step

  with pytest.raises(InterruptedError):
    tasks.train(config, tmp_path, after_step=slow(stop_at=17))
  tasks.train(config, tmp_path, after_step=slow())
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  rates = [r["examples_per_sec"] for r in rows if r["split"] == "train"]
  assert len(rates) == 4 and ceiling / 2 < min(rates) and max(rates) <= ceiling, (rates, ceiling)


def test_sample_mode_draws_other_samples_with_another_sample_seed(uninterrupted, tmp_path):
  """Every sample run redrew the training's own grid (a fixed key): eval.sample_seed 0 keeps it, another
  value draws new samples from the same checkpoint, the same ones each time."""
  workdir = tmp_path / "seeds"
  shutil.copytree(uninterrupted, workdir)
  drawn = {}
  for seed in (0, 1, 1):
    config = load_config("toy2d_gmm", "tiny")
    config.eval.sample_seed = seed
    written = pathlib.Path(tasks.sample(config, str(workdir))["samples"])
    drawn.setdefault(seed, []).append(written.read_bytes())
  assert drawn[0][0] == (workdir / "samples" / "step_0000040.png").read_bytes()
  assert drawn[1][0] == drawn[1][1] != drawn[0][0]


def test_eval_and_sample_modes(uninterrupted, tmp_path):
  """Each evaluation and sample run writes its own file: none replaces the training's or an earlier one's."""
  workdir = tmp_path / "modes"
  shutil.copytree(uninterrupted, workdir)
  before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
  tasks.evaluate(load_config("toy2d_gmm", "tiny"), workdir)  # the launcher's --mode=eval is below
  result = json.loads((workdir / "eval_step_0000040.json").read_text())
  summary = json.loads((workdir / "summary.json").read_text())
  assert result["nll_nats"] == pytest.approx(summary["nll_nats"], abs=1e-6)
  first = (workdir / "eval_step_0000040.json").read_bytes()
  # eval.* settings may change; they are listed, and the step's earlier evaluation keeps its file. The
  # progress bar (on in the training) may change too, unlisted: it changes nothing the run computes.
  proc = run_main(TINY, f"--workdir={workdir}", "--mode=eval", "--config.eval.batch_size=512",
                  "--config.train.progress_bar=False")
  again = json.loads((workdir / "eval_step_0000040_2.json").read_text())
  assert json.loads(proc.stdout[proc.stdout.index("{"):]) == again
  assert again["eval_config_changes"] == {"eval.batch_size": {"stored": 1024, "now": 512}}
  assert again["nll_nats"] == pytest.approx(summary["nll_nats"], abs=1e-5)
  assert (workdir / "eval_step_0000040.json").read_bytes() == first
  tasks.sample(load_config("toy2d_gmm", "tiny"), workdir)
  proc = run_main(TINY, f"--workdir={workdir}", "--mode=sample", "--config.eval.batch_size=512")
  assert json.loads(proc.stdout[proc.stdout.index("{"):]) == {
      "samples": str(workdir / "samples" / "sample_run_step_0000040_2.png"),
      "eval_config_changes": {"eval.batch_size": {"stored": 1024, "now": 512}}}
  assert (workdir / "samples" / "sample_run_step_0000040.png").stat().st_size > 0
  assert (workdir / "samples" / "sample_run_step_0000040_2.png").stat().st_size > 0
  # A sample run beside one still drawing (which holds its file's name from the start) takes the next name.
  held = workdir / "samples" / "sample_run_step_0000040_3.png"
  with run_files.claimed_unused_path(held.with_name("sample_run_step_0000040.png")) as other:
    assert other == held
    assert tasks.sample(load_config("toy2d_gmm", "tiny"), workdir)["samples"] == held.with_stem(
        "sample_run_step_0000040_4")
  assert not held.exists()  # the other run wrote nothing: its name is free again
  assert {p: p.read_bytes() for p in before} == before  # the training's files are all there, untouched


def test_a_run_killed_after_its_final_checkpoint_ends_like_the_uninterrupted_run(uninterrupted, tmp_path):
  """The final evaluation is written after the last checkpoint; a rerun writes it once more, not twice."""
  workdir = tmp_path / "final"
  shutil.copytree(uninterrupted, workdir)
  (workdir / "summary.json").unlink()
  for picture in (workdir / "samples").glob("step_0000040.*"):
    picture.unlink()
  run_main(TINY, f"--workdir={workdir}")
  assert run_metrics(workdir) == run_metrics(uninterrupted)
  assert without_wall_clock(json.loads((workdir / "summary.json").read_text())) == without_wall_clock(
      json.loads((uninterrupted / "summary.json").read_text()))
  test_events = [e.step for path in (workdir / "tensorboard").glob("events.out.tfevents.*")
                 for e in map(event_of, read_event_records(path))
                 if e.HasField("summary") and e.summary.value[0].tag.startswith("test/")]
  assert sorted(test_events) == [20, 40]


def test_eval_leaves_the_unfinished_save_of_a_running_training_alone(uninterrupted, tmp_path):
  workdir = tmp_path / "saving"
  shutil.copytree(uninterrupted, workdir)
  unfinished = workdir / "checkpoints" / "50.orbax-checkpoint-tmp-1"  # as a training's save in progress
  unfinished.mkdir()
  (unfinished / "part").write_bytes(b"being written")
  tasks.evaluate(load_config("toy2d_gmm", "tiny"), str(workdir))
  assert (unfinished / "part").read_bytes() == b"being written"


def test_a_non_finite_config_value_resumes_and_evaluates(tmp_path):
  config = load_config("toy2d_gmm", "tiny")
  config.train.progress_bar = False
  config.optim.grad_clip_norm = float("inf")  # stored as null in config.json
  summary = tasks.train(config, str(tmp_path))
  assert tasks.train(config, str(tmp_path)) == summary
  assert tasks.evaluate(config, str(tmp_path))["step"] == summary["step"]


BAD_CONFIG_FILES = {
    "no_get_config.py": "x = 1\n",
    "syntax.py": "def get_config(:\n  pass\n",
    "name_error.py": "def get_config():\n  return undefined_name\n",
    "import_error.py": "import not_a_module_anywhere\n",
    "attribute_error.py": ("import ml_collections\ndef get_config():\n"
                           "  return ml_collections.ConfigDict().nothing\n"),
    "returns_dict.py": "def get_config():\n  return {'task': 'gmm'}\n",
    "returns_none.py": "def get_config():\n  pass\n",
    "type_error.py": "def get_config():\n  return 1 + 'a'\n",
    # A config of one family set to another: its :tiny size read a field the config lacks.
    "other_family.py": ("from gm_jax.tasks import with_tiny_size\nfrom gm_jax.train.defaults import "
                        "base_config\n@with_tiny_size\ndef get_config():\n  config = base_config()\n"
                        "  config.task = 'vae'\n  return config\n")}


@pytest.mark.parametrize("config,message", [
    (f"{CONFIGS / 'toy2d_gmm.py'}:small", "unknown config argument 'small'; use ':tiny' or nothing"),
    ("{tmp}/absent.py", "config file '{tmp}/absent.py' does not exist; pass --config="),
    ("{tmp}/no_get_config.py", "config file '{tmp}/no_get_config.py' defines no get_config()"),
    # The config file's own errors were tracebacks (an AttributeError was called a bad override), and a
    # dict or None returned loaded, failing at the first field the run read.
    ("{tmp}/syntax.py", "config file '{tmp}/syntax.py' fails to load, line 1: SyntaxError: invalid syntax"),
    ("{tmp}/name_error.py", "config file '{tmp}/name_error.py' fails to load, line 2: NameError: name "
                            "'undefined_name' is not defined"),
    ("{tmp}/import_error.py", "config file '{tmp}/import_error.py' fails to load, line 1: "
                              "ModuleNotFoundError: No module named 'not_a_module_anywhere'"),
    ("{tmp}/attribute_error.py", "config file '{tmp}/attribute_error.py' fails to load, line 3: "
                                 "AttributeError"),
    ("{tmp}/returns_dict.py", "config file '{tmp}/returns_dict.py': get_config() returned a dict, not an "
                              "ml_collections.ConfigDict"),
    ("{tmp}/returns_none.py", "config file '{tmp}/returns_none.py': get_config() returned None, not an "
                              "ml_collections.ConfigDict"),
    # ml_collections re-raises a TypeError or ValueError of get_config as a flag error.
    ("{tmp}/type_error.py", "config file '{tmp}/type_error.py' fails to load, line 2: TypeError: unsupported "
                            "operand"),
    ("{tmp}/other_family.py:tiny", "config file '{tmp}/other_family.py' fails to load: the config it builds "
                                   "has no field 'hidden' (if it sets config.task, start from"),
    (None, "flag --config=None: Flag --config must have a value other than None")])
def test_a_bad_config_file_is_one_line(tmp_path, config, message):
  for name, text in BAD_CONFIG_FILES.items():
    (tmp_path / name).write_text(text)
  config_flag = () if config is None else (f"--config={config.format(tmp=tmp_path)}",)
  proc = run_main(*config_flag, f"--workdir={tmp_path / 'w'}", check=False)
  assert proc.returncode == 1
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(f"error: {message.format(tmp=tmp_path)}"), proc.stderr
  assert not (tmp_path / "w").exists()


def test_override_and_misspelt_key(tmp_path):
  proc = run_main(TINY, f"--workdir={tmp_path / 'a'}", "--config.optim.learning_rat=0.1", check=False)
  assert proc.returncode != 0 and "learning_rat" in proc.stderr
  assert proc.stderr.strip().splitlines() == [
      "error: --config.optim.learning_rat: the config has no field 'learning_rat' (did you mean "
      "'learning_rate'?); see the config file for its fields"]
  assert not (tmp_path / "a").exists()
  # A toy density's geometry is {} unless the config sets it: "no field 'std'" sent users looking for one.
  proc = run_main(f"--config={CONFIGS / 'toy2d_flow_matching.py'}:tiny", f"--workdir={tmp_path / 'a'}",
                  "--config.data.geometry.std=0.1", check=False)
  assert proc.stderr.strip().splitlines() == [
      "error: --config.data.geometry.std: data.geometry holds only what the config sets; give the whole "
      "mapping, e.g. --config.data.geometry=\"{'std': VALUE}\" (the distribution's fields: "
      "gm_jax/data/toy2d.py)"]


def test_changed_config_in_an_existing_workdir_is_refused(uninterrupted, tmp_path):
  workdir = tmp_path / "conflict"
  shutil.copytree(uninterrupted, workdir)
  before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
  proc = run_main(TINY, f"--workdir={workdir}", "--config.optim.learning_rate=0.5", check=False)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1].startswith("error: workdir")
  assert "optim.learning_rate" in proc.stderr
  assert {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()} == before


FOREIGN = ["metrics.jsonl", "tensorboard/events.out.tfevents.1.host", "samples/a.png"]


@pytest.mark.parametrize("foreign", FOREIGN)
def test_a_workdir_with_results_but_no_config_is_refused_and_kept(foreign, tmp_path):
  """A fresh run deleted another program's TensorBoard events and metrics.jsonl rows (it starts both
  anew) and would overwrite its samples."""
  (tmp_path / foreign).parent.mkdir(parents=True, exist_ok=True)
  (tmp_path / foreign).write_bytes(b"not this run's")
  with pytest.raises(WorkdirConflictError, match=r"holds results without a config.json "
                                                      r"\((metrics.jsonl|tensorboard|samples)\); use a new"):
    tasks.train(load_config("toy2d_gmm", "tiny"), str(tmp_path))
  assert (tmp_path / foreign).read_bytes() == b"not this run's"
  written = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file() and p.name != ".lock"]
  assert written == [foreign]


def _corrupt(workdir, step: int) -> None:
  for f in (workdir / "checkpoints" / str(step) / "state").rglob("*"):
    if f.is_file() and f.parent.name == "d":
      f.write_bytes(b"garbage")


def test_corrupt_latest_checkpoint_falls_back_and_is_kept(uninterrupted, tmp_path):
  workdir = tmp_path / "corrupt"
  shutil.copytree(uninterrupted, workdir)
  _corrupt(workdir, 40)
  proc = run_main(TINY, f"--workdir={workdir}", "--mode=eval")
  warnings = [line for line in proc.stderr.splitlines() if "cannot be restored" in line]
  assert len(warnings) == 1 and "checkpoint 40 cannot be restored" in warnings[0], proc.stderr
  assert "skipped for step 30, the newest that restores" in warnings[0]
  assert json.loads((workdir / "eval_step_0000030.json").read_text())["step"] == 30
  assert (workdir / "checkpoints" / "40").exists()
  # When no checkpoint restores, the newest one's error is one line, and every checkpoint stays.
  _corrupt(workdir, 30)
  _corrupt(workdir, 20)
  proc = run_main(TINY, f"--workdir={workdir}", "--mode=eval", check=False)
  assert proc.returncode == 1
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith(f"error: checkpoint {workdir / 'checkpoints' / '40'} cannot be restored")
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["20", "30", "40"]


def test_a_checkpoint_rotated_away_while_it_is_read_is_not_called_damaged(uninterrupted, tmp_path,
                                                                          monkeypatch):
  """An eval beside a training that keeps one checkpoint: the step being read is removed by the training's
  next save (here 40 becomes 50); the restore reads the steps again and takes the new one."""
  workdir = tmp_path / "rotating"
  shutil.copytree(uninterrupted, workdir)
  checkpoints = workdir / "checkpoints"
  for step in (20, 30):
    shutil.rmtree(checkpoints / str(step))
  exp = tasks.experiment(load_config("toy2d_gmm", "tiny"), workdir, read_only=True)
  read, calls = exp.checkpointer.restore, []

  def rotating(step, abstract):
    calls.append(step)
    if step == 40:
      (checkpoints / "40").rename(checkpoints / "50")
    return read(step, abstract)

  monkeypatch.setattr(exp.checkpointer, "restore", rotating)
  try:
    state, _ = exp.restore_latest()
  finally:
    exp.checkpointer.close()
  assert calls == [40, 50] and int(state.step) == 40  # step 50 holds the state that step 40 held


def test_a_damaged_summary_of_a_finished_run_is_one_line_that_says_what_to_do(uninterrupted, tmp_path):
  workdir = tmp_path / "damaged_summary"
  shutil.copytree(uninterrupted, workdir)
  (workdir / "summary.json").write_text('{"step": 40')
  proc = run_main(TINY, f"--workdir={workdir}", check=False)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {workdir / 'summary.json'} is damaged (")
  assert proc.stderr.strip().endswith(
      "delete it and rerun the same command to write the final evaluation again")
  # Deleted, the rerun writes it again, as after a kill past the final checkpoint (tested above).


def test_training_resumes_from_the_newest_checkpoint_that_restores(uninterrupted, tmp_path):
  workdir = tmp_path / "corrupt_unfinished"
  shutil.copytree(uninterrupted, workdir)
  (workdir / "summary.json").unlink()  # as if killed while writing its final files
  _corrupt(workdir, 40)
  proc = run_main(TINY, f"--workdir={workdir}")
  assert "checkpoint 40 cannot be restored" in proc.stderr and "skipped for step 30" in proc.stderr
  assert (workdir / "checkpoints_unreadable" / "40" / "state").is_dir()  # kept, out of the way
  assert without_wall_clock(json.loads((workdir / "summary.json").read_text())) == without_wall_clock(
      json.loads((uninterrupted / "summary.json").read_text()))
  assert run_metrics(workdir) == run_metrics(uninterrupted)


def test_nan_guard_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
  _poisoned_gmm(monkeypatch, loss_nan_index=64 * 23 + 5)
  config = load_config("toy2d_gmm", "tiny")
  config.train.progress_bar = False
  with pytest.raises(loop.NonFiniteError,
                     match=r"non-finite loss of network 'model' at step 24; .* checkpoint: step 20"):
    tasks.train(config, str(tmp_path))
  assert not (tmp_path / "summary.json").exists()
  assert max(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == 20


def _poisoned_gmm(monkeypatch, loss_nan_index: int | None = None, update_nan_from: int | None = None):
  """Makes the gmm task's loss NaN on a batch holding example `loss_nan_index`, or its update NaN from
  optimizer step `update_nan_from` on (finite loss and gradients, as a broken schedule would give)."""
  import jax.numpy as jnp
  import optax

  real_build = tasks.BUILDERS["gmm"]

  def poisoned(config, dataset):
    task = real_build(config, dataset)
    update = task.updates[0]

    def loss_fn(params, model_state, batch, key):
      loss, aux = update.loss_fn(params, model_state, batch, key)
      if loss_nan_index is not None:
        loss = jnp.where(jnp.any(batch["index"] == loss_nan_index), jnp.nan, loss)
      return loss, aux

    return dataclasses.replace(task, updates=(dataclasses.replace(update, loss_fn=loss_fn),))

  real_optimizers = optim.make_optimizers

  def nan_later(config, blocks, updates_per_step=None):
    optimizers, schedules = real_optimizers(config, blocks, updates_per_step)
    scale = optax.scale_by_schedule(lambda count: jnp.where(count >= update_nan_from, jnp.nan, 1.0))
    return {n: optax.chain(tx, scale) for n, tx in optimizers.items()}, schedules

  monkeypatch.setitem(tasks.BUILDERS, "gmm", poisoned)
  if update_nan_from is not None:
    monkeypatch.setattr(optim, "make_optimizers", nan_later)


def test_nonfinite_update_is_never_checkpointed(tmp_path, monkeypatch):
  _poisoned_gmm(monkeypatch, update_nan_from=3)
  config = load_config("toy2d_gmm", "tiny")
  config.train.progress_bar = False
  config.train.checkpoint_every = 1
  with pytest.raises(loop.NonFiniteError,
                     match=r"non-finite optimizer update of network 'model' at step 4; .* last good "
                           r"checkpoint: step 3 "):
    tasks.train(config, str(tmp_path))
  assert max(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == 3
  result = tasks.evaluate(config, str(tmp_path))
  assert result["step"] == 3 and np.isfinite(result["nll_nats"])


def test_nonfinite_before_the_first_checkpoint_says_none_was_written(tmp_path, monkeypatch):
  """Nor do evaluations between the failed step and the next log row go on under later steps' names: the
  guard is read before each (and before each sample grid)."""
  _poisoned_gmm(monkeypatch, loss_nan_index=5)
  config = load_config("toy2d_gmm", "tiny")
  config.train.update(progress_bar=False, log_every=config.train.num_steps, eval_every=1, sample_every=1)
  with pytest.raises(loop.NonFiniteError,
                     match=r"loss of network 'model' at step 1; .* no checkpoint was written") as e:
    tasks.train(config, str(tmp_path))
  assert "None" not in str(e.value)
  metrics = tmp_path / "metrics.jsonl"
  assert not metrics.exists() or '"split": "test"' not in metrics.read_text()


@pytest.mark.parametrize("lr", ["0", "-1e-3", "inf"])
def test_learning_rate_must_be_finite_and_positive(lr):
  config = load_config("toy2d_gmm", "tiny")
  config.optim.learning_rate = float(lr)
  with pytest.raises(ValueError, match=r"optim.learning_rate=.* must be a finite number > 0"):
    config_checks.check_config(config)


@pytest.mark.parametrize("config_name,field,value,message", [
    # A negative end ratio turned the decayed learning rate negative; a negative clipping norm turned the
    # gradient around: both trained uphill without a word.
    ("toy2d_gmm", "optim.end_lr_ratio", -1.0, r"optim.end_lr_ratio=-1.0 must be >= 0"),
    ("toy2d_gmm", "optim.grad_clip_norm", -1.0, r"optim.grad_clip_norm=-1.0 must be >= 0"),
    ("toy2d_gan", "optim_d.weight_clip", -0.01, r"optim_d.weight_clip=-0.01 must be >= 0"),
    ("toy2d_gmm", "optim.warmup_steps", -5, r"optim.warmup_steps=-5 must be an integer >= 0"),
    ("toy2d_gmm", "optim.scales", (1.0, -0.1), r"optim.scales=\(1.0, -0.1\) must be finite and >= 0"),
    ("toy2d_gmm", "optim.scales", (1.0, "a"), r"optim.scales=\(1.0, 'a'\) must be finite and >= 0"),
    # Out of order, the middle scale was never used; a string failed in optax's arithmetic.
    ("toy2d_gan", "optim_d.boundaries", (6, 2),
     r"optim_d.boundaries=\(6, 2\) must be increasing train steps"),
    ("toy2d_gmm", "optim.boundaries", ("a",), r"optim.boundaries=\('a',\) must be increasing train steps"),
    # The mixture reads no compute dtype, so nothing else would have told.
    ("toy2d_gmm", "train.compute_dtype", "float8", r"train.compute_dtype must be one of \['bfloat16', "),
])
def test_optimizer_factors_bounds_and_the_compute_dtype_are_checked(config_name, field, value, message):
  config = load_config(config_name, "tiny")
  block, key = field.split(".")
  config[block][key] = value
  with pytest.raises(ValueError, match=message):
    config_checks.check_config(config)


@pytest.mark.parametrize("overrides,message", [
    # Each trained to NaN (eps = 0: 0 / 0 where a gradient is 0; b1 = 1: no gradient ever enters the
    # moment) behind advice to lower the learning rate, or ran with a moment that grows without bound.
    ({"optim.eps": 0.0}, r"optim.eps=0.0 must be a number > 0 for adam"),
    ({"optim.b1": 1.0}, r"optim.b1=1.0 must be a number in \[0, 1\) for adam"),
    ({"optim.b2": 1.5}, r"optim.b2=1.5 must be a number in \[0, 1\) for adam"),
    ({"optim.name": "rmsprop", "optim.decay": 1.5}, r"optim.decay=1.5 must be a number in \[0, 1\)"),
    ({"optim.name": "adagrad", "optim.initial_accumulator": -1.0},
     r"optim.initial_accumulator=-1.0 must be >= 0"),
    # The learning rate rose for 10 steps, then sat at its end value; a boundary inside the warmup moved
    # to its end.
    ({"optim.schedule": "linear", "optim.warmup_steps": 10, "optim.decay_steps": 5},
     r"optim.warmup_steps=10 does not end before optim.decay_steps=5"),
    ({"optim.schedule": "piecewise", "optim.warmup_steps": 10, "optim.boundaries": (5, 20),
      "optim.scales": (1.0, 0.5, 0.1)}, r"optim.boundaries=\(5, 20\) must lie after optim.warmup_steps=10"),
])
def test_optimizer_hyperparameters_and_warmup_are_checked(overrides, message):
  config = load_config("toy2d_gmm", "tiny")
  for field, value in overrides.items():
    block, key = field.split(".")
    config[block][key] = value
  with pytest.raises(ValueError, match=message):
    config_checks.check_config(config)


@pytest.mark.parametrize("field,value,warned", [
    ("train.ema_decay", 0.999, "the EMA parameters, which evaluation and sampling use, still hold 96%"),
    ("train.ema_decay", 0.5, None),
    ("optim.warmup_steps", 40, "optim.warmup_steps=40 outlasts the run's 40 steps"),
    ("optim.warmup_steps", 39, None),
])
def test_an_average_or_a_warmup_that_the_run_is_too_short_for_is_named(field, value, warned, caplog):
  """A shortened run with the EMA of a long one evaluated mostly its initial parameters (a DDPM's NLL
  863.8 nats against 10.8 without the average), without a word."""
  config = load_config("toy2d_gmm", "tiny")
  assert config.train.num_steps == 40
  block, key = field.split(".")
  config[block][key] = value
  config_checks.check_config(config)
  found = [r.getMessage() for r in caplog.records if "still hold" in r.getMessage() or "outlasts" in
           r.getMessage()]
  assert (found == []) if warned is None else (len(found) == 1 and warned in found[0]), found


@pytest.mark.parametrize("config_name,overrides,message", [
    # A negative count of residual blocks looped without end, its memory growing; a width of 0 divided
    # by zero in an initializer; a dropout rate of 1 zeroed every activation (the classifier trained to
    # 7 % accuracy); attention at a resolution the U-Net lacks was left out (the CIFAR value on digits).
    ("digits_ddpm", {"model.num_res_blocks": -1}, r"model.num_res_blocks=-1 needs a size >= 0"),
    ("digits_ddpm", {"model.channel_mults": (1, 0)}, r"model.channel_mults=\(1, 0\) needs sizes >= 1"),
    ("digits_ddpm", {"model.num_groups": 0}, r"model.num_groups=0 needs a size >= 1"),
    ("digits_ddpm", {"model.dropout": 1.0}, r"model.dropout=1.0 must be in \[0, 1\)"),
    ("digits_ddpm", {"model.attention_resolutions": (16,)},
     r"model.attention_resolutions=\(16,\) names a resolution .* its levels are \(8,\)"),
    ("toy2d_ddpm", {"model.net": "unet"}, r"model.net='unet' takes images; these data are points"),
    ("toy2d_ddpm", {"model.time_dim": 0}, r"model.time_dim=0 needs a size >= 1"),
    ("digits_classifier", {"model.dropout": 1.0}, r"model.dropout=1.0 must be in \[0, 1\)"),
    ("digits_classifier", {"model.features": 0}, r"model.features=0 needs a size >= 1"),
    ("digits_realnvp", {"model.hidden": (0, 8)}, r"model.hidden=\(0, 8\) needs sizes >= 1"),
    ("digits_realnvp", {"objective.dequantization": "variational", "objective.dequantizer_couplings": -1},
     r"objective.dequantizer_couplings=-1 needs a size >= 1"),
    ("digits_vae_iaf", {"model.iaf_context": 0}, r"model.iaf_context=0 needs a size >= 1"),
])
def test_network_sizes_and_rates_are_checked(config_name, overrides, message):
  config = load_config(config_name, "tiny")
  for field, value in overrides.items():
    block, key = field.split(".")
    config[block][key] = value
  with pytest.raises(ValueError, match=message):
    tasks.build(config, data_lib.load_dataset(config.data))


def test_a_piecewise_schedule_is_set_from_the_command_line(tmp_path):
  """optim.boundaries and optim.scales exist in every config (piecewise was a traceback without them)."""
  run_main(TINY, f"--workdir={tmp_path}", "--config.optim.schedule=piecewise",
           "--config.optim.warmup_steps=0",
           "--config.optim.boundaries=(20,)", "--config.optim.scales=(1.0,0.1)")
  rates = [r["learning_rate"] for r in run_metrics(tmp_path) if r["split"] == "train"]
  assert rates == pytest.approx([0.02, 0.02, 0.002, 0.002])


@pytest.mark.parametrize("name,value,bound", [
    ("train.num_steps", 0, ">= 1"), ("train.log_every", 0, ">= 1"), ("train.checkpoint_every", -1, ">= 0"),
    ("train.eval_every", -5, ">= 0"), ("train.sample_every", True, ">= 0"), ("train.num_samples", -3, ">= 0"),
    ("train.keep_checkpoints", 0, ">= 1"), ("data.batch_size", 0, ">= 1"), ("eval.batch_size", -4, ">= 1"),
    ("data.seed", -1, r"in \[0, 4294967295\]"),  # the seed's error named no field
    # Tracebacks from JAX's 32-bit PRNG data: eval.sample_seed's after the whole training had run.
    ("eval.sample_seed", 2**32, r"in \[0, 4294967295\]"), ("seed", 2**65, r"in \[0, 4294967295\]")])
def test_counts_must_be_integers_in_range(name, value, bound):
  config = load_config("toy2d_gmm", "tiny")
  *block, field = name.split(".")
  (config[block[0]] if block else config)[field] = value
  with pytest.raises(ValueError, match=rf"^{name}=.* must be an integer {bound}; set --config.{name}$"):
    config_checks.check_config(config)


def test_evaluation_and_samples_use_the_parameters_average_when_there_is_one(tmp_path):
  config = load_config("toy2d_gmm", "tiny")
  config.train.update(ema_decay=0.9, progress_bar=False)
  tasks.train(config, str(tmp_path))
  exp = tasks.experiment(config, tmp_path, read_only=True)
  state, _ = exp.restore_latest()
  with_params = lambda pick: state.replace(networks={
      name: net.replace(params=pick(net), ema_params=pick(net)) for name, net in state.networks.items()})
  average, current = with_params(lambda net: net.ema_params), with_params(lambda net: net.params)
  assert exp.evaluate(state) == exp.evaluate(average) != exp.evaluate(current)
  samples = lambda s: exp._draw_samples(s, 8)[0]
  np.testing.assert_array_equal(samples(state), samples(average))
  assert not np.array_equal(samples(state), samples(current))


@pytest.mark.parametrize("decay", [-0.5, 1.0, 1.5])
def test_ema_decay_must_be_in_0_1(decay):
  config = load_config("toy2d_gmm", "tiny")
  config.train.ema_decay = decay
  with pytest.raises(ValueError, match=r"train.ema_decay=.* must be in \[0, 1\)"):
    config_checks.check_config(config)


@pytest.mark.parametrize("name,field,value", [
    ("digits_flow_matching_conditional", "eval.guidance", "nan"),
    ("toy2d_realnvp", "eval.sample_temperature", "nan"),
    ("digits_edm", "eval.edm_s_noise", "inf"), ("toy2d_vae", "model.decoder_std", "inf"),
    ("toy2d_vae", "objective.beta", "inf"), ("toy2d_nsf", "model.tail_bound", "inf"),
    ("markov_lm", "data.concentration", "-inf")])
def test_non_finite_settings_are_refused_before_training_and_evaluation(name, field, value, tmp_path):
  config = load_config(name, "tiny")
  block, key = field.split(".")
  # NaN passed the range checks (the samples were NaN); infinity passed them too and failed at the first
  # step, blaming the learning rate, after config.json had stored it as null.
  config[block][key] = float(value)
  message = rf"^{field} = {value} is not a finite number; set --config.{field} to one$"
  with pytest.raises(ValueError, match=message):
    config_checks.check_config(config)
  with pytest.raises(ValueError, match=message):
    tasks.evaluate(config, str(tmp_path))
  assert not any(tmp_path.iterdir())


def test_a_config_set_to_another_family_names_the_fields_it_lacks():
  # --config.task=<another family> failed inside that family's builder on the first field it lacked.
  configs = {"gmm": "toy2d_gmm", "vae": "toy2d_vae", "flow": "toy2d_realnvp", "diffusion": "toy2d_ddpm",
             "gan": "toy2d_gan", "language_model": "markov_lm", "pixelcnn": "digits_pixelcnn",
             "classifier": "digits_classifier"}
  assert set(configs) == set(tasks.BUILDERS)
  for family, name in configs.items():
    config_checks.check_config(load_config(name, "tiny"))
    for other in set(configs) - {family}:
      config = load_config(name, "tiny")
      config.task = other
      with pytest.raises(ValueError, match=rf"^the config lacks \w+\.\w+.*, which config.task='{other}' "
                                           rf"reads: start from a '{other}' config"):
        config_checks.check_config(config)
  # The trainer's own fields are left to the checks that read them: a config file may predate one that is
  # read optionally (the data's test fraction has a default).
  config = load_config("markov_lm", "tiny")
  del config.data["test_fraction"]
  config_checks.check_fields_of_family(config)


def test_a_runtime_error_from_xla_is_reported_on_one_line():
  def fails(x):
    raise ValueError("the callback's own error")

  program = jax.jit(lambda x: jax.pure_callback(fails, jax.ShapeDtypeStruct((), np.float32), x))
  with pytest.raises(RuntimeError) as caught:
    program(np.float32(1)).block_until_ready()
  report = str(caught.value).strip().splitlines()
  assert len(report) > 2  # XLA's report carries the callback's traceback
  line = command_line.one_line(caught.value)
  assert line == f"{report[0].strip()} ... ValueError: the callback's own error"


def test_checkpoint_every_0_writes_only_the_last_step(tmp_path):
  config = load_config("toy2d_gmm", "tiny")
  config.train.update(progress_bar=False, checkpoint_every=0)
  tasks.train(config, str(tmp_path))
  steps = [int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()]
  assert steps == [config.train.num_steps]


@pytest.mark.parametrize("argument,message,after_lock", [
    ("--config.optim.learning_rate=nan",
     "optim.learning_rate=nan must be a finite number > 0; set --config.optim.learning_rate", False),
    # A stray positional argument used to print the whole usage text.
    ("extra",
     "unexpected arguments ['extra']: every setting is a flag (--config.FIELD=VALUE, --workdir=...)", False),
    # Found once the workdir is locked, while the data loads: the workdir the launch made is removed.
    ("--config.data.name=nope", "unknown data.name 'nope'; choose toy2d, digits, text, markov", True),
    ("--config.task=vae", "the config lacks data.binarize, eval.iwae_chunk, eval.iwae_samples, "
                          "model.activation, ..., which config.task='vae' reads", False),
    # The toy config's data.num_train stays in the config, unread by npz: set on the command line, refused.
    (("--config.data.name=npz", "--config.data.path=points.npz", "--config.data.num_train=100"),
     "data.num_train is set, but data.name='npz' does not read it (only toy2d data do)", False)])
def test_bad_input_on_the_command_line_is_one_line_before_anything_is_written(tmp_path, argument, message,
                                                                             after_lock):
  arguments = (argument,) if isinstance(argument, str) else argument
  proc = run_main(TINY, f"--workdir={tmp_path / 'w'}", *arguments, check=False)
  assert proc.returncode == 1
  [line] = proc.stderr.strip().splitlines()
  assert line.startswith(f"error: {message}")
  assert not (tmp_path / "w").exists()
  if after_lock:  # a workdir the user made stays, as empty as it was (no lock, no checkpoints/)
    (tmp_path / "mine").mkdir()
    assert run_main(TINY, f"--workdir={tmp_path / 'mine'}", *arguments, check=False).returncode == 1
    assert (tmp_path / "mine").is_dir() and not any((tmp_path / "mine").iterdir())


def _files(workdir):
  return {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}


def test_eval_refuses_a_config_that_differs_outside_eval(uninterrupted, tmp_path):
  workdir = tmp_path / "other_data"
  shutil.copytree(uninterrupted, workdir)
  before = _files(workdir)
  refusal = f"workdir {workdir} was trained with a different config (data.seed (stored 0, now 1))"
  proc = run_main(TINY, f"--workdir={workdir}", "--mode=eval", "--config.data.seed=1", check=False)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]  # one line
  assert proc.stderr.startswith(f"error: {refusal}")
  config = load_config("toy2d_gmm", "tiny")
  config.data.seed = 1
  with pytest.raises(WorkdirConflictError, match="^" + re.escape(refusal)):
    tasks.sample(config, workdir)
  assert _files(workdir) == before


def test_a_run_from_before_a_new_config_field_is_evaluated_and_resumed(uninterrupted, tmp_path):
  """config.json of a run that predates a field: the field at the base config's value is no difference."""
  workdir = tmp_path / "older"
  shutil.copytree(uninterrupted, workdir)
  stored = json.loads((workdir / "config.json").read_text())
  del stored["data"]["random_flip"], stored["eval"]["inception_score_splits"]
  (workdir / "config.json").write_text(json.dumps(stored))
  tiny = lambda: load_config("toy2d_gmm", "tiny")  # TINY's config, as the launcher gives it
  tasks.evaluate(tiny(), workdir)
  assert tasks.train(tiny(), workdir)["step"] == 40  # finished: its summary again
  other = tiny()
  other.eval.inception_score_splits, other.seed = 2, 3
  with pytest.raises(WorkdirConflictError, match=re.escape("different config (seed (stored 0, now 3))")):
    tasks.evaluate(other, workdir)
  shorter = tiny()
  shorter.train.num_steps = 7
  refusal = "different config (train.num_steps (stored 40, now 7)); use a new --workdir or the stored values"
  with pytest.raises(WorkdirConflictError, match=re.escape(refusal)):
    tasks.train(shorter, workdir)
  # Only evaluation settings differ, on a finished run: eval mode takes them.
  config = tiny()
  config.eval.batch_size = 7
  exp = tasks.experiment(config, workdir)
  with pytest.raises(WorkdirConflictError, match=r"\(eval.batch_size \(stored \d+, now 7\)\); use a new "
                                                      r"--workdir or the stored values, or --mode=eval for "
                                                      r"other evaluation settings$"):
    check_workdir(exp)
  exp.checkpointer.close()


def test_a_run_whose_final_evaluation_failed_finishes_with_other_evaluation_settings(uninterrupted, tmp_path):
  """Trained to its last step without a summary.json (the final evaluation failed, e.g. on its batch size):
  train mode finishes it with changed eval.* settings and lists them; nothing else may change, and only
  then."""
  workdir = tmp_path / "final_evaluation_failed"
  shutil.copytree(uninterrupted, workdir)
  (workdir / "summary.json").unlink()
  stored_config = (workdir / "config.json").read_text()
  config = load_config("toy2d_gmm", "tiny")
  stored_batch = config.eval.batch_size
  config.eval.batch_size = 96
  summary = tasks.train(config, workdir)
  changes = {"eval.batch_size": {"stored": stored_batch, "now": 96}}
  assert summary["eval_config_changes"] == changes
  assert json.loads((workdir / "summary.json").read_text()) == json.loads(run_files.to_json(summary))
  # The same checkpoint evaluated in other batches: the same numbers up to the order of the sums.
  expected = json.loads((uninterrupted / "summary.json").read_text())
  assert summary["nll_nats"] == pytest.approx(expected["nll_nats"], rel=1e-5)
  assert (workdir / "config.json").read_text() == stored_config  # what the training ran with
  tests_rows = [r for r in run_metrics(workdir) if r["split"] == "test" and r["step"] == 40]
  assert len(tests_rows) == 1 and tests_rows[0]["nll_nats"] == summary["nll_nats"]
  # The command rerun returns its summary; other evaluation settings are --mode=eval's from now on.
  files = _files(workdir)
  assert tasks.train(config, workdir) == json.loads((workdir / "summary.json").read_text())
  assert _files(workdir) == files
  config.eval.batch_size = 128
  with pytest.raises(WorkdirConflictError, match="or --mode=eval for other evaluation settings$"):
    tasks.train(config, workdir)
  # Before the last step, the intermediate evaluations' settings hold.
  unfinished = tmp_path / "unfinished"
  shutil.copytree(uninterrupted, unfinished)
  (unfinished / "summary.json").unlink()
  shutil.rmtree(unfinished / "checkpoints" / "40")
  with pytest.raises(WorkdirConflictError, match=r"eval.batch_size \(stored \d+, now 128\)"):
    tasks.train(config, unfinished)


def test_eval_and_sample_on_an_empty_workdir_write_nothing(tmp_path):
  for mode in ("eval", "sample"):
    proc = run_main(TINY, f"--workdir={tmp_path / 'empty'}", f"--mode={mode}", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: no checkpoint in {tmp_path / 'empty' / 'checkpoints'}; train first (--mode=train)"]
    assert not (tmp_path / "empty").exists()


def test_second_launch_into_a_workdir_in_use_fails_at_once(tmp_path):
  from gm_jax.train.run_files import WorkdirLock

  workdir = tmp_path / "busy"
  workdir.mkdir()
  held = WorkdirLock(workdir)
  assert held.acquire()  # as a running launch would; flock conflicts between open files, even in one process
  try:
    proc = run_main(TINY, f"--workdir={workdir}", check=False)
  finally:
    held.release()
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines() == [
      f"error: workdir {workdir} is in use by another run (it holds {workdir / '.lock'}); wait for that run "
      f"to end or use a new --workdir"]
  assert [p.name for p in workdir.iterdir()] == [".lock"]
  # A lock left by a dead process does not block: see the SIGKILL-then-rerun test.


def test_a_workdir_under_the_home_directory_is_expanded():
  """--workdir=~/run: the shell leaves a ~ after = as it is, and a directory named ~ was made."""
  assert loop.run_directory("~/run") == pathlib.Path.home() / "run"


def _mount_tmpfs(path, options: str) -> bool:
  """Mounts a tmpfs (root only); False where that is not allowed."""
  import subprocess

  path.mkdir(parents=True, exist_ok=True)
  return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                        capture_output=True).returncode == 0


def _umount(path):
  import subprocess

  subprocess.run(["umount", str(path)], check=True)


@pytest.mark.parametrize("mode", [tasks.train, tasks.evaluate, tasks.sample])
def test_an_empty_workdir_is_refused_and_nothing_is_written(mode, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # where an empty workdir would have put the run's files
  with pytest.raises(ValueError, match=r"^--workdir is empty: pass the run's own directory"):
    mode(load_config("toy2d_gmm", "tiny"), "")
  assert not list(tmp_path.iterdir())


def test_unusable_workdir_is_one_line(tmp_path):
  (tmp_path / "a_file").write_text("not a workdir")
  proc = run_main(TINY, f"--workdir={tmp_path / 'a_file'}", check=False)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines() == [
      f"error: workdir {tmp_path / 'a_file'} is a file, not a directory; use another --workdir"]
  read_only = tmp_path / "read_only"
  if not _mount_tmpfs(read_only, "ro,size=64k"):
    pytest.skip("mounting a read-only tmpfs needs root")
  try:
    proc = run_main(TINY, f"--workdir={read_only / 'run'}", check=False)
  finally:
    _umount(read_only)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines() == [
      f"error: workdir {read_only / 'run'} cannot be written (Read-only file system); use another --workdir"]


@pytest.mark.parametrize("mode", ["eval", "sample"])
def test_eval_and_sample_on_a_read_only_run_stop_before_the_work(uninterrupted, tmp_path, mode):
  """They evaluated or sampled first and failed when writing the result (hours later on a large split)."""
  mount = tmp_path / "mount"
  if not _mount_tmpfs(mount, "size=16m"):
    pytest.skip("mounting a tmpfs needs root")
  try:
    shutil.copytree(uninterrupted, mount / "run")
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
    with pytest.raises(WorkdirConflictError, match=rf"^{mount / 'run'} cannot be written \(Read-only "
                                                        rf"file system\); --mode={mode} writes its results"):
      run = tasks.evaluate if mode == "eval" else tasks.sample
      run(load_config("toy2d_gmm", "tiny"), str(mount / "run"))
  finally:
    _umount(mount)


def test_a_failed_evaluation_leaves_no_samples_folder_it_made(uninterrupted, tmp_path):
  run = tmp_path / "run"
  shutil.copytree(uninterrupted, run)
  shutil.rmtree(run / "samples")
  config = load_config("toy2d_gmm", "tiny")
  config.eval.feature_space = "inception_v3"  # refused once the run's files are checked
  with pytest.raises(ValueError, match=r"eval.feature_space='inception_v3' reads images"):
    tasks.evaluate(config, str(run))
  assert not (run / "samples").exists()


def _event_steps(workdir) -> dict[str, list[int]]:
  """{tag: steps} over every TensorBoard event file of the run, repeats included."""
  steps = {}
  for path in (workdir / "tensorboard").glob("events.out.tfevents.*"):
    for record in read_event_records(path):
      event = event_of(record)
      for value in event.summary.value:
        steps.setdefault(value.tag, []).append(event.step)
  return {tag: sorted(s) for tag, s in steps.items()}


def test_resume_on_another_device_count_and_layout_is_noticed_and_logs_no_step_twice(uninterrupted, tmp_path):
  workdir = tmp_path / "moved"
  # Synchronous checkpoints every 20 steps and a kill after step 35: the killed run logged step 30, the
  # resumed run starts from step 20 and logs step 30 again.
  every_20 = ("--config.train.checkpoint_every=20", "--config.train.async_checkpoints=False")
  # Killed with its state sharded over 4 of 8 devices, resumed replicated on 2: the checkpoint restores
  # onto the new layout (mesh.* may differ from config.json). The rows up to step 20 (an evaluation among
  # them) come from 8 devices and must match the one-device run's within the stated tolerance; the
  # quickstart notebook runs the whole run at mesh.fsdp=8.
  proc = run_main("35", TINY, f"--workdir={workdir}", *every_20, "--config.mesh.fsdp=4", script=KILL_AT_STEP,
                  check=False, env={"XLA_FLAGS": xla_flags(devices=8)})
  assert proc.returncode == -signal.SIGKILL
  assert 30 in _event_steps(workdir)["train/loss"]
  proc = run_main(TINY, f"--workdir={workdir}", *every_20,
                  env={"XLA_FLAGS": xla_flags(devices=2)})
  notices = [line for line in proc.stderr.splitlines() if "was written on" in line]
  assert len(notices) == 1, proc.stderr
  assert notices[0].endswith("checkpoint 20 was written on 8 device(s) in 1 process(es), parameters sharded "
                             "4 ways; now on 2 device(s) in 1 process(es): the run continues, and its "
                             "numbers may differ from an uninterrupted run in float32 rounding")
  assert _event_steps(workdir) == _event_steps(uninterrupted)
  assert_runs_close(workdir, uninterrupted)
  # An evaluation on yet another layout continues no run, also on 3 devices, which do not divide the
  # training batch of 64 (refused before: eval mode draws no training batch, and may not change its size).
  proc = run_main(TINY, f"--workdir={workdir}", *every_20, "--mode=eval",
                  env={"XLA_FLAGS": xla_flags(devices=3)})
  notices = [line for line in proc.stderr.splitlines() if "was written on" in line]
  assert len(notices) == 1 and notices[0].endswith(
      "checkpoint 40 was written on 2 device(s) in 1 process(es); now on 3 device(s) in 1 process(es): its "
      "evaluation and samples here may differ from the original layout's in float32 rounding"), proc.stderr


def test_full_disk_is_one_line_and_the_run_resumes_after_space_is_freed(uninterrupted, tmp_path):
  import subprocess

  # A real full disk rather than a monkeypatched writer, since the noise came from orbax's and tensorstore's
  # background threads: a 120 KB tmpfs (mounting needs root; skipped elsewhere) fills up at checkpoint 20.
  disk = tmp_path / "disk"
  if not _mount_tmpfs(disk, "size=120k"):
    pytest.skip("mounting a tmpfs needs root")
  try:
    no_bar = "--config.train.progress_bar=False"  # the bar would write to stderr too
    proc = run_main(TINY, f"--workdir={disk / 'run'}", no_bar, check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    assert "No space left on device" in lines[0] and "rerun the same command to resume" in lines[0]
    subprocess.run(["mount", "-o", "remount,size=20m", str(disk)], check=True)
    run_main(TINY, f"--workdir={disk / 'run'}", no_bar)
    resumed = json.loads((disk / "run" / "summary.json").read_text())
    assert without_wall_clock(resumed) == without_wall_clock(
        json.loads((uninterrupted / "summary.json").read_text()))
    assert run_metrics(disk / "run") == run_metrics(uninterrupted)
  finally:
    _umount(disk)


@pytest.mark.parametrize("field,value,message", [
    ("prdc_k", 0, r"eval.prdc_k=0 must be at least 1 and below eval.quality_samples \(200\), the "
                  r"reference's size \(\d+: the test split up to eval.quality_reference_max=10000\) and the "
                  r"data floor's \(200: the train split's\); lower eval.prdc_k, draw more test points "
                  r"\(data.num_test\) or set"),  # toy2d has no data.test_fraction, which was advised
    ("quality_reference_max", 1, r"eval.prdc_k=5 must be at least 1 and below .* the reference's size \(1:"),
    ("quality_reference", "train", r"eval.prdc_k=5 .* the reference's size \(\d+: the train split up to .* "
                                   r"the data floor's \(5: the test split's\)"),
    ("kid_subsets", 0, r"eval.kid_subsets=0 must be at least 1 and eval.kid_subset_size=100 at least 2"),
    ("kid_subset_size", 1, r"eval.kid_subset_size=1 at least 2")])
def test_sample_quality_settings_are_refused_before_training(tmp_path, field, value, message):
  # They used to fail only in the final evaluation, after the last checkpoint and config.json were written,
  # so the run could neither finish nor be rerun with the fixed value in its workdir.
  config = load_config("toy2d_gmm", "tiny")
  config.train.progress_bar = False
  config.eval[field] = value
  if field == "quality_reference":  # the test split, now the data floor, holds 5 points
    config.data.num_test = 5
  with pytest.raises(ValueError, match=message):
    tasks.train(config, str(tmp_path))
  assert not (tmp_path / "config.json").exists() and not list((tmp_path / "checkpoints").glob("*"))


def test_eval_mode_checks_its_counts_and_quality_settings_before_evaluating(uninterrupted, tmp_path):
  workdir = tmp_path / "trained"
  shutil.copytree(uninterrupted, workdir)
  before = _files(workdir)
  config = load_config("toy2d_gmm", "tiny")
  config.eval.batch_size = 0  # was a Python error from range(), or a KeyError for a negative size
  with pytest.raises(ValueError, match=r"^eval.batch_size=0 must be an integer >= 1; set "
                                       r"--config.eval.batch_size$"):
    tasks.evaluate(config, str(workdir))
  config = load_config("toy2d_gmm", "tiny")
  config.eval.prdc_k = 0
  with pytest.raises(ValueError, match=r"^eval.prdc_k=0 must be at least 1"):
    tasks.evaluate(config, str(workdir))
  assert _files(workdir) == before


def test_sample_settings_of_a_task_that_draws_no_samples_are_named(tmp_path, caplog):
  config = load_config("digits_classifier", "tiny")  # they took no effect without a word
  config.train.update(num_samples=16, sample_every=1)
  config.eval.update(feature_space="digits", sample_seed=3)
  exp = tasks.experiment(config, tmp_path, read_only=True)
  with caplog.at_level("WARNING"):
    assert exp.feature_space is None
  assert [r.getMessage() for r in caplog.records if "ignores" in r.getMessage()] == [
      "task 'classifier', which draws no samples, ignores train.num_samples=16 (read by tasks that draw "
      "samples), train.sample_every=1 (read by tasks that draw samples), eval.feature_space='digits' (read "
      "by tasks that draw samples), eval.sample_seed=3 (read by tasks that draw samples)"]


def test_an_eval_batch_larger_than_the_test_split_is_cut_to_it(tmp_path):
  """Padded to eval.batch_size=10**9, the 512 test points took the process's memory after the training."""
  config = load_config("toy2d_gmm", "tiny")
  config.eval.batch_size = 10**9
  exp = tasks.experiment(config, tmp_path, read_only=True)
  assert len(exp.dataset.test) <= exp.eval_batch_size < len(exp.dataset.test) + exp.mesh.size


def test_sample_mode_on_a_run_that_draws_no_samples_is_one_line(tmp_path):
  # It used to report {"samples": "None"} and succeed.
  config = load_config("digits_classifier", "tiny")
  config.train.progress_bar = False
  tasks.train(config, str(tmp_path / "classifier"))
  with pytest.raises(ValueError, match=r"^task 'classifier' draws no samples; --mode=sample needs a "
                                       r"generative model$"):
    tasks.sample(config, str(tmp_path / "classifier"))
  config = load_config("toy2d_gmm", "tiny")
  config.train.update(progress_bar=False, num_samples=0)
  tasks.train(config, str(tmp_path / "no_grid"))
  with pytest.raises(ValueError, match=r"^this run was trained with train.num_samples=0, the size of its "
                                       r"sample grid: it draws no samples$"):
    tasks.sample(config, str(tmp_path / "no_grid"))


def test_a_finished_runs_results_without_its_checkpoints_are_not_overwritten(uninterrupted, tmp_path):
  workdir = tmp_path / "no_checkpoints"
  shutil.copytree(uninterrupted, workdir)
  shutil.rmtree(workdir / "checkpoints")
  before = _files(workdir)
  proc = run_main(TINY, f"--workdir={workdir}", check=False)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines() == [
      f"error: workdir {workdir} holds a finished run's summary.json but no checkpoint to resume from; use a "
      f"new --workdir (training here would overwrite it)"]
  assert _files(workdir) == before

