"""Steps reuse the host memory the previous step freed (gm_jax.train.host_memory)."""

import json
import os
import subprocess
import sys

from tests.conftest import REPO


def _worker() -> dict:
  # A fresh process, since the setting is process-wide and once set stays set.
  proc = subprocess.run([sys.executable, "-m", "tests.train.host_memory_worker"], capture_output=True,
                        text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"}, cwd=REPO, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout)


def test_keep_freed_memory_stops_page_faults_on_every_call():
  r = _worker()
  if r["faults_kept"] > 0.01 * r["temp_pages"]:
    # Seen once in a full parallel test run (probably the host reclaiming the kept pages from a busy
    # worker; not verified): a second fresh process tells that apart from a setting that does not work.
    r = _worker()
  assert r["kept"]
  # With glibc's defaults each call faults its whole temporary buffer in; afterwards, once the heap has
  # grown to hold the calls in flight, most calls none of it (the median of 40).
  assert r["faults_default"] >= r["temp_pages"]
  assert r["faults_kept"] <= 0.01 * r["temp_pages"]
