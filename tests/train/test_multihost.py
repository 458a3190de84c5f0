"""The launcher as two jax.distributed processes on 127.0.0.1 (2 CPU devices each) trains the same run as
one process with 4 devices: same losses, metrics, summary and final parameters to float32 rounding."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from gm_jax.train import loop
from tests.conftest import CONFIGS, MAIN, REPO, load_config

TINY = f"--config={CONFIGS / 'toy2d_gmm.py'}:tiny"
WALL_CLOCK = {"examples_per_sec"}


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(workdir, devices: int, *flags: str) -> subprocess.Popen:
  env = {**os.environ, "JAX_PLATFORMS": "cpu",
         "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
  return subprocess.Popen([sys.executable, str(MAIN), TINY, f"--workdir={workdir}",
                           "--config.train.progress_bar=False", *flags],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def _finish(proc: subprocess.Popen) -> dict:
  out, err = proc.communicate(timeout=240)
  assert proc.returncode == 0, err[-3000:]
  return json.loads(out[out.index("{"):])  # collective libraries may print before the result


def _metrics(workdir) -> list[dict]:
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in records]


def _final_params(workdir):
  exp = loop.Experiment(load_config("toy2d_gmm", "tiny"), workdir)
  try:
    state, _ = exp.restore_latest()
  finally:
    exp.checkpointer.close()
  return jax.device_get(state.networks)


def _assert_close(a, b):
  if isinstance(a, float) or isinstance(b, float):
    assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
  else:
    assert a == b


def test_two_processes_match_one_process_with_as_many_devices(tmp_path):
  port = _free_port()
  two = tmp_path / "two_processes"
  one = tmp_path / "one_process"
  procs = [_launch(two, 2, f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                   f"--process_id={i}") for i in range(2)]
  single = _launch(one, 4)
  outputs = [_finish(p) for p in procs]
  reference = _finish(single)

  assert outputs[0] == outputs[1]  # every process reports the same summary
  assert outputs[0].keys() == reference.keys()
  for k in reference:
    _assert_close(outputs[0][k], reference[k])
  assert json.loads((two / "summary.json").read_text()) == outputs[0]
  two_metrics, one_metrics = _metrics(two), _metrics(one)
  assert [(r["step"], r["split"], sorted(r)) for r in two_metrics] == [
      (r["step"], r["split"], sorted(r)) for r in one_metrics]
  for a, b in zip(two_metrics, one_metrics):
    for k in a:
      _assert_close(a[k], b[k])
  for a, b in zip(jax.tree.leaves(_final_params(two)), jax.tree.leaves(_final_params(one))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # Only process 0 writes the run's files: the same ones as the single process.
  names = lambda w: sorted(p.name for p in w.iterdir())
  assert names(two) == names(one)
  assert names(two / "samples") == names(one / "samples")
  assert len(list((two / "tensorboard").iterdir())) == 1
