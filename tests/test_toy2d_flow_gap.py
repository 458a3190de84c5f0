"""experiments/toy2d_flow_gap.py on a short toy2d RealNVP run: its numbers agree with the trainer's test NLL
and with each other."""

import json

import numpy as np
import pytest

from gm_jax import tasks
from gm_jax.models.flows import Flow
from gm_jax.tasks.flow import flow_config
from gm_jax.train import config_checks
from tests.conftest import REPO, load_config, run_main


def test_flow_gap_splits_the_runs_excess_over_the_true_density(tmp_path):
  config = load_config("toy2d_realnvp", "tiny")
  config.train.progress_bar = False
  summary = tasks.train(config, str(tmp_path))
  # As if trained with its parameters sharded over 8 devices: the script restores onto its own (it stopped
  # with "mesh.fsdp=8 must be a positive divisor of the number of devices", a flag it does not have) ...
  stored = json.loads((tmp_path / "config.json").read_text())
  stored["mesh"]["fsdp"] = 8
  # and from before two fields were added (a KeyError traceback; --mode=eval reads such runs)
  del stored["eval"]["sample_seed"], stored["train"]["compute_dtype"]
  (tmp_path / "config.json").write_text(json.dumps(stored))
  proc = run_main(f"--workdir={tmp_path}", "--num_samples=100000",
                  script=REPO / "experiments" / "toy2d_flow_gap.py")
  report = json.loads(proc.stdout.strip().splitlines()[-1])
  # The config rebuilt from config.json holds tuples as lists: no field is reported unread for that.
  assert " ignores " not in proc.stderr
  assert set(report["share_of_largest"]) == {k for k in ("10", "100", "1000") if int(k) < report["num_test"]}
  # The same flow, parameters and test points as the trainer's final evaluation.
  assert report["model_nll_nats"] == pytest.approx(summary["nll_nats"], abs=1e-4)
  assert report["excess_nats"] == pytest.approx(report["model_nll_nats"] - report["true_nll_nats"], abs=1e-9)
  bins = report["by_distance_to_a_mode"]
  assert sum(b["fraction"] for b in bins) == pytest.approx(1.0)
  assert sum(b["contribution"] for b in bins) == pytest.approx(report["excess_nats"], rel=1e-6)
  # Test points of the ring (std 0.02): 1 - exp(-r^2 / 2) of them within r stds of their mode.
  assert bins[0]["fraction"] == pytest.approx(1 - np.exp(-0.5), abs=0.02)
  # The flow's mass near the modes grows with the radius (each radius counts the same samples).
  mass = [report["mass_within_stds"][r]["flow"] for r in sorted(report["mass_within_stds"], key=float)]
  assert 0 <= mass[0] and np.all(np.diff(mass) >= 0) and mass[-1] <= 1
  within = report["mass_within_stds"]
  assert all(within[r]["true"] == pytest.approx(1 - np.exp(-float(r) ** 2 / 2)) for r in within)
  # The sampled mass within 6 stds against the flow's density integrated over those discs on a grid (the
  # sampled distances were not checked against anything: uniform noise in place of samples passed).
  exp, state = tasks.restored(config, tmp_path)
  exp.checkpointer.close()
  flow = Flow(flow_config(config, exp.dataset))
  dist = exp.dataset.spec.extras["distribution"]
  h, radius = 0.004, 6 * dist.std
  offsets = np.arange(-radius, radius, h) + h / 2
  disc = np.stack(np.meshgrid(offsets, offsets), -1).reshape(-1, 2)
  disc = disc[np.linalg.norm(disc, axis=-1) < radius]
  points = (np.asarray(dist.means_K2)[:, None, :] + disc[None]).reshape(-1, 2).astype(np.float32)
  log_p = flow.apply({"params": state.params(exp.use_ema)["model"]}, points)
  integrated = float(np.sum(np.exp(np.asarray(log_p, np.float64)))) * h * h
  standard_error = np.sqrt(integrated * (1 - integrated) / 100_000)
  assert within["6"]["flow"] == pytest.approx(integrated, abs=5 * standard_error + 0.05 * integrated), (
      integrated, within["6"])


def test_flow_gap_on_a_workdir_without_a_flow_run_is_one_line(tmp_path):
  script = REPO / "experiments" / "toy2d_flow_gap.py"
  proc = run_main(f"--workdir={tmp_path}", script=script, check=False)
  assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
      f"error: {str(tmp_path)!r} holds no run (no config.json); pass the --workdir of a toy2d flow run"]
  (tmp_path / "config.json").write_text(json.dumps({"task": "gmm", "data": {"name": "toy2d"}}))
  proc = run_main(f"--workdir={tmp_path}", script=script, check=False)
  assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
      f"error: {str(tmp_path)!r} holds a gmm run on toy2d; this reads toy2d flow runs"]
  # A flow run killed before its first checkpoint.
  stored = config_checks.config_to_dict(load_config("toy2d_realnvp", "tiny"))
  (tmp_path / "config.json").write_text(json.dumps(stored))
  proc = run_main(f"--workdir={tmp_path}", script=script, check=False)
  assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
      f"error: no checkpoint in {tmp_path / 'checkpoints'}; train first (--mode=train)"]
