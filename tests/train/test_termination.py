"""SIGTERM: recorded during the training steps (the trainer then saves the step reached and stops), raised
as SystemExit(143) anywhere else, so that cleanup runs: here a sample run's reserved output name is
removed, where Python's default left it as an empty file for good."""

from __future__ import annotations

import signal
import subprocess
import sys

from tests.conftest import REPO

SCRIPT = """
import os, pathlib, signal, sys
from gm_jax.train import run_files, termination
termination.install()
with termination.deferred():
  os.kill(os.getpid(), signal.SIGTERM)
  print("recorded", termination.requested(0), flush=True)
  try:
    with termination.deferred(False):  # an evaluation between steps: the recorded signal raises on entry
      print("not reached", flush=True)
  except SystemExit as e:
    print("raised", e.code, flush=True)
termination.install()  # the second SIGTERM of a run would end it at once
with run_files.claimed_unused_path(pathlib.Path(sys.argv[1]) / "samples.png") as path:
  print("reserved", path.exists(), flush=True)
  os.kill(os.getpid(), signal.SIGTERM)
  signal.pause()  # not reached: the handler raises
"""


def test_sigterm_is_recorded_during_steps_and_raised_elsewhere(tmp_path):
  proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                        cwd=REPO, timeout=120)
  assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-2000:]
  assert proc.stdout.split() == ["recorded", "True", "raised", "143", "reserved", "True"]
  assert list(tmp_path.iterdir()) == []  # the empty reserved file was removed on the way out


DISTRIBUTED = """
import os, signal, sys, time
import jax
from gm_jax.train import termination
termination.install()
jax.distributed.initialize(f"127.0.0.1:{sys.argv[1]}", num_processes=1, process_id=0)
os.kill(os.getpid(), signal.SIGTERM)  # taken over by jax.distributed's preemption service
step, deadline = 0, time.monotonic() + 60  # the notice reaches the sync manager asynchronously
while time.monotonic() < deadline and not termination.requested(step + 1):
  step += 1
print("stops at", step + 1 if time.monotonic() < deadline else None, flush=True)
"""


def test_a_jax_distributed_run_of_one_process_stops_at_the_sync_point(tmp_path):
  """jax.distributed takes SIGTERM over whatever the process count: with one process the handler never
  ran and the run went on (the sync point was asked only with several)."""
  from tests.train.test_multihost import _free_port

  proc = subprocess.run([sys.executable, "-c", DISTRIBUTED, str(_free_port())], capture_output=True,
                        text=True, cwd=REPO, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.split()[:2] == ["stops", "at"] and proc.stdout.split()[2] != "None", proc.stdout


DROPPED = """
import gc, os, signal
from gm_jax.train import termination
termination.install()

def signal_while_collecting(phase, info):
  if phase == "start":
    os.kill(os.getpid(), signal.SIGTERM)
    sum(range(1000))  # the handler runs here, inside the collector: Python drops what it raises

gc.callbacks.append(signal_while_collecting)
gc.collect()
gc.callbacks.clear()
print("dropped", flush=True)
termination.stop_if_requested()  # where an evaluation or a sampler asks between batches
print("not stopped", flush=True)
"""


def test_a_sigterm_whose_exception_python_dropped_still_stops_the_next_loop():
  """A SIGTERM handled inside a garbage-collector callback (JAX registers one) raised an exception that
  Python only printed: the run went on to its end and exited 0."""
  proc = subprocess.run([sys.executable, "-c", DROPPED], capture_output=True, text=True, cwd=REPO,
                        timeout=120)
  assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-2000:]
  assert proc.stdout.split() == ["dropped"]
