"""The same steps on 1 and on 8 (fake CPU) devices give the same losses."""

import json
import os
import subprocess
import sys

import numpy as np

from tests.conftest import REPO, xla_flags


def _run(devices: int) -> dict:
  env = {**os.environ, "JAX_PLATFORMS": "cpu",
         "XLA_FLAGS": xla_flags(devices)}
  proc = subprocess.run([sys.executable, "-m", "tests.train.multidevice_worker"], capture_output=True,
                        text=True, env=env, cwd=REPO, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout)


def test_eight_devices_match_one_device():
  one, eight = _run(1), _run(8)
  assert one["devices"] == 1 and eight["devices"] == 8
  np.testing.assert_allclose(eight["gmm"], one["gmm"], atol=1e-5, rtol=0)
  np.testing.assert_allclose(eight["noisy"], one["noisy"], atol=1e-5, rtol=0)
  assert len(set(np.round(one["noisy"], 6))) == len(one["noisy"])  # the loss really changes per step
