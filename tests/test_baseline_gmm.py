"""The main job: the toy2d Gaussian-mixture baseline reaches the ring's entropy floor."""

import json

from tests.conftest import CONFIGS, run_main


def test_gmm_reaches_the_entropy_floor_on_the_ring(tmp_path):
  run_main(f"--config={CONFIGS / 'toy2d_gmm.py'}", f"--workdir={tmp_path}")
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["nll_nats"] - summary["entropy_nats"] < 0.02
  # Against the true density on the same test points: an estimate of KL(p || model) >= 0 up to noise.
  assert -0.005 < summary["nll_nats"] - summary["data_nll_nats"] < 0.02
