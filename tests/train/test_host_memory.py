"""Steps reuse the host memory the previous step freed (gm_jax.train.host_memory)."""

import json
import os
import subprocess
import sys

from tests.conftest import REPO


def test_keep_freed_memory_stops_page_faults_on_every_call():
  # A fresh process, since the setting is process-wide and once set stays set.
  proc = subprocess.run([sys.executable, "-m", "tests.train.host_memory_worker"], capture_output=True,
                        text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"}, cwd=REPO, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  r = json.loads(proc.stdout)
  assert r["kept"]
  # With glibc's defaults each call faults its whole temporary buffer in; afterwards, once the heap has
  # grown to hold the calls in flight, most calls none of it (the median of 40).
  assert r["faults_default"] >= r["temp_pages"]
  assert r["faults_kept"] <= 0.01 * r["temp_pages"]
