"""The launcher as two jax.distributed processes on 127.0.0.1 (2 CPU devices each, the train state sharded
over all 4 devices of both) trains the same run as one process with 4 devices and a replicated state: same
metrics, summary and final parameters to float32 rounding."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import (CONFIGS, KILL_AT_STEP, MAIN, REPO, assert_runs_close, without_compilation_cache,
                            without_wall_clock, xla_flags)

TINY = f"--config={CONFIGS / 'toy2d_gmm.py'}:tiny"
VAE = f"--config={CONFIGS / 'digits_vae.py'}:tiny"


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _listening(port: int) -> bool:
  with socket.socket() as s:
    return s.connect_ex(("127.0.0.1", port)) == 0


def _launch(workdir, devices: int, *flags: str, config: str = TINY, cwd=REPO,
            script: tuple[str, ...] = (str(MAIN),)) -> subprocess.Popen:
  env = without_compilation_cache({**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": xla_flags(devices)})
  return subprocess.Popen([sys.executable, *script, config, f"--workdir={workdir}",
                           "--config.train.progress_bar=False", *flags],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)


def _finish(proc: subprocess.Popen) -> dict:
  out, err = proc.communicate(timeout=240)
  assert proc.returncode == 0, err[-3000:]
  return json.loads(out[out.index("{"):])  # collective libraries may print before the result


# The VAE, since its pictures (reconstructions, interpolations) come from a program of their own, whose
# output two processes must both be able to fetch. (One config: a comparison takes about 30 s of the suite.)
def test_two_processes_match_one_process_with_as_many_devices(tmp_path):
  port = _free_port()
  two, one = tmp_path / "two_processes", tmp_path / "one_process"
  flags = ("--config.eval.batch_size=96", "--config.train.checkpoint_every=2")  # two checkpoints (below)
  procs = [_launch(two, 2, f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                   f"--process_id={i}", "--config.mesh.fsdp=4", *flags, config=VAE) for i in range(2)]
  single = _launch(one, 4, *flags, config=VAE)
  outputs = [_finish(p) for p in procs]
  _finish(single)
  assert without_wall_clock(outputs[0]) == without_wall_clock(outputs[1])  # the same summary everywhere
  assert json.loads((two / "summary.json").read_text()) == outputs[0]
  assert_runs_close(two, one)
  # Only process 0 writes the run's files: the same ones as the single process.
  names = lambda w: sorted(p.name for p in w.iterdir())
  assert names(two) == names(one)
  assert names(two / "samples") == names(one / "samples")
  assert len(list((two / "tensorboard").iterdir())) == 1
  # Sample mode: process 0 names and writes the file, and both processes report it (process 1 printed
  # "samples": null).
  port = _free_port()
  procs = [_launch(two, 2, f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                   f"--process_id={i}", "--config.mesh.fsdp=4", "--mode=sample", *flags, config=VAE)
           for i in range(2)]
  reports = [_finish(p) for p in procs]
  assert reports[0] == reports[1] and pathlib.Path(reports[0]["samples"]).is_file(), reports
  # The only checkpoint, damaged in process 1's shards only: process 0 restores it, process 1 cannot. Process
  # 1 left orbax's restore before its last barrier, in which process 0 waited, and both crashed in their
  # next collective; now both stop in one line after the attempt, nothing moved.
  older, newest = sorted(int(d.name) for d in (two / "checkpoints").iterdir() if d.name.isdigit())
  shutil.rmtree(two / "checkpoints" / str(older))
  shards = list((two / "checkpoints" / str(newest)).glob("state/ocdbt.process_1/d/*"))
  assert shards, sorted((two / "checkpoints" / str(newest)).rglob("*"))
  for shard in shards:
    shard.write_bytes(b"damaged")
  before = sorted(p.relative_to(two) for p in two.rglob("*"))
  port = _free_port()
  procs = [_launch(two, 2, f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                   f"--process_id={i}", "--config.mesh.fsdp=4", "--mode=eval", *flags, config=VAE)
           for i in range(2)]
  for proc in procs:
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 1, err[-3000:]
    assert re.fullmatch(rf"error: checkpoint \S*checkpoints/{newest} cannot be restored on process 1 only "
                        rf"\([^;<]+; each process reads its own "  # no tensorstore spec in the reason
                        rf"shards of it\): move it out of \S*checkpoints and rerun",
                        err.strip().splitlines()[-1]), err[-3000:]
  assert sorted(p.relative_to(two) for p in two.rglob("*")) == before


def test_sigterm_to_one_process_stops_both_at_one_step_with_its_checkpoint(tmp_path):
  """jax.distributed's preemption service takes SIGTERM over (the signal was only logged, and the run went
  on): process 1's SIGTERM after step 5 reaches both, which save the same step and exit 143 together."""
  port = _free_port()
  quiet = ("--config.train.num_steps=5000", "--config.train.log_every=5000",
           "--config.train.checkpoint_every=5000", "--config.train.eval_every=0",
           "--config.train.sample_every=0")
  procs = [_launch(tmp_path, 1, f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                   f"--process_id={i}", *quiet,
                   script=(str(KILL_AT_STEP), "5:TERM") if i == 1 else (str(MAIN),)) for i in range(2)]
  steps = []
  for proc in procs:
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    steps += re.findall(r"stopped by SIGTERM at step (\d+)", err)
  assert len(steps) == 2 and steps[0] == steps[1] and 5 < int(steps[0]) < 5000, steps
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [steps[0]]


def test_sigterm_ends_a_process_still_waiting_for_the_others(tmp_path):
  # Its handler could not run inside jax.distributed.initialize: the process waited out JAX's 300 s.
  port = _free_port()
  proc = _launch(tmp_path, 1, f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                 "--process_id=0")  # process 1 never starts
  deadline = time.monotonic() + 120
  while not _listening(port):  # process 0's coordination service: it is inside initialize
    assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
    time.sleep(0.2)
  time.sleep(1)
  proc.send_signal(signal.SIGTERM)
  try:
    _, err = proc.communicate(timeout=20)
  finally:
    proc.kill()
  assert proc.returncode == -signal.SIGTERM
  assert err.strip().splitlines() == [
      f"process 0 of 2: connecting to 127.0.0.1:{port}, which waits until all 2 processes have started"]
  assert not tmp_path.joinpath("checkpoints").exists()


def test_bad_distributed_flags_are_one_line(tmp_path):
  # Without cluster variables in the environment, --distributed=auto has nothing to detect.
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(("SLURM_", "OMPI_", "PMI_", "TPU_", "MEGASCALE_", "CLOUD_TPU"))}
  env["JAX_PLATFORMS"] = "cpu"
  cases = {("--distributed=auto",): "error: jax.distributed.initialize failed: ",
           ("--num_processes=2", "--process_id=0"): "error: missing --coordinator_address: a multi-process ",
           # It was "list index out of range".
           ("--coordinator_address=nonsense", "--num_processes=2", "--process_id=0"):
               "error: --coordinator_address='nonsense' must be HOST:PORT, where process 0 listens"}
  for flags, start in cases.items():
    proc = subprocess.run([sys.executable, str(MAIN), TINY, f"--workdir={tmp_path / 'w'}", *flags],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(start), proc.stderr[-3000:]
  assert not (tmp_path / "w").exists()


_ONE_LINE_DIFFERENCE = ("error: process(es) [1] were launched with another config, --workdir or --mode "
                         "than process 0; launch every process with the same command apart from --process_id")


@pytest.mark.parametrize("differing,devices,message", [
    (lambda i: (f"--config.train.num_steps={20 + 10 * i}",), (2, 2), _ONE_LINE_DIFFERENCE),
    (lambda i: (f"--mode={('train', 'eval')[i]}",), (2, 2), _ONE_LINE_DIFFERENCE),
    (lambda i: (), (2, 1), "error: the processes have different numbers of devices (2, 1 in process order); "
                           "give every process as many (the same XLA_FLAGS device count, "
                           "CUDA_VISIBLE_DEVICES or TPU host)"),
], ids=["config", "mode", "devices"])
def test_processes_launched_with_different_commands_stop_in_one_line(tmp_path, differing, devices, message):
  """Different configs used to train until the shorter run's last step and then wait on each other for
  ever; an eval process beside a sample process hung in the evaluation's collectives; processes with
  different device counts failed in the batch's reshape."""
  port = _free_port()
  procs = [_launch(tmp_path / "w", devices[i], f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                   f"--process_id={i}", *differing(i)) for i in range(2)]
  for proc in procs:
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1] == message
  assert not (tmp_path / "w").exists()


_MISSING = "array file 'points.npz' does not exist; set data.path to a .npy or .npz file"


@pytest.mark.parametrize("on_host_1,messages", [
    ("other points", ["error: process(es) [1] loaded other data than process 0 (this process: 90 training "
                      "and 10 test examples); give every process the same files at data.path"] * 2),
    ("no file", [f"error: process 1 failed to load the data: FileNotFoundError: {_MISSING}",
                 f"error: {_MISSING}"]),
])
def test_processes_that_loaded_different_data_stop_in_one_line(tmp_path, on_host_1, messages):
  """Each process reads its part of every batch from its own copy of the data: one command whose
  data.path holds other points on one host (here: the same relative path from another directory) used
  to train on the mixture without notice; where it holds no file, process 0 stopped on a collective's
  "connection reset by peer", the cause printed by process 1 alone."""
  port = _free_port()
  for i in range(2):
    (tmp_path / f"host{i}").mkdir()
    points = np.random.default_rng(i).normal(size=(100, 2)).astype(np.float32)
    if i == 0 or on_host_1 == "other points":
      np.savez(tmp_path / f"host{i}" / "points.npz", x=points)
  procs = [_launch(tmp_path / "w", 2, f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                   f"--process_id={i}", "--config.data.name=npz", "--config.data.path=points.npz",
                   cwd=tmp_path / f"host{i}") for i in range(2)]
  for proc, message in zip(procs, messages):
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 1, err[-3000:]
    assert err.strip().splitlines()[-1] == message
  assert not (tmp_path / "w").exists()
