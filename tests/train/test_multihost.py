"""Two jax.distributed processes on 127.0.0.1 train the same run as one process."""

import json
import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO, load_config, without_wall_clock


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_match_one_process(tmp_path):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  env.pop("XLA_FLAGS", None)
  port = str(_free_port())
  workdir = tmp_path / "two_hosts"
  procs = [subprocess.Popen([sys.executable, "-m", "tests.train.multihost_worker", str(i), "2", port,
                             str(workdir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=REPO) for i in range(2)]
  outputs = []
  for p in procs:
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-3000:]
    outputs.append(json.loads(out.strip().splitlines()[-1]))
  assert all(o["process_count"] == 2 and o["devices"] == 2 for o in outputs)
  assert without_wall_clock(outputs[0]["summary"]) == without_wall_clock(outputs[1]["summary"])

  from gm_jax import tasks

  config = load_config("toy2d_gmm", "tiny")
  config.train.progress_bar = False
  single = tasks.train(config, str(tmp_path / "one_host"))
  assert outputs[0]["summary"]["step"] == single["step"]
  assert outputs[0]["summary"]["nll_nats"] == pytest.approx(single["nll_nats"], abs=1e-5)
  # Only process 0 writes the run's files; the checkpoint holds the final step.
  assert json.loads((workdir / "summary.json").read_text()) == outputs[0]["summary"]  # process 0's file
  assert (workdir / "checkpoints" / "40").is_dir()
