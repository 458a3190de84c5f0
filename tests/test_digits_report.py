"""experiments/digits_report.py at :tiny size: it trains a run, reports it, reads it again, and a report
that finds nothing to report leaves the earlier one as it was."""

import json
import subprocess
import sys

from gm_jax.train.config_checks import config_to_dict
from tests.conftest import REPO, load_config, run_main

SCRIPT = REPO / "experiments" / "digits_report.py"


def test_digits_report_trains_reports_and_keeps_its_table_on_bad_input(tmp_path):
  # A --root relative to where the report is started (its runs went relative to the repository).
  proc = run_main(f"--root={tmp_path.name}", "--configs=digits_vae", "--tiny", script=SCRIPT,
                  cwd=tmp_path.parent)
  [line] = proc.stdout.strip().splitlines()
  row = json.loads(line)
  summary = json.loads((tmp_path / "digits_vae" / "summary.json").read_text())
  assert row["config"] == "digits_vae" and row["bpd"] == summary["bpd"] and row["fd"] == summary["fd"]
  table = (tmp_path / "digits_report.md").read_text().splitlines()
  assert table[2].startswith(f"| digits_vae | vae | {summary['bpd']:.3f} ({summary['estimator']}) |")
  assert table[-1].startswith("| data floor: ")
  figure = (tmp_path / "digits_report.png").read_bytes()
  assert figure
  # An evaluation's judged samples written since (another picture, newer): the report keeps the
  # training's numbers and shows their samples, not the newest picture.
  samples = tmp_path / "digits_vae" / "samples"
  step = f"step_{summary['step']:07d}.png"
  (samples / f"eval_quality_{step}").write_bytes((samples / step).read_bytes())
  # Run again, the run is read, not trained again.
  again = run_main(f"--root={tmp_path}", "--configs=digits_vae", "--tiny", "--notrain", script=SCRIPT)
  assert json.loads(again.stdout.strip().splitlines()[-1]) == row
  assert (tmp_path / "digits_report.png").read_bytes() == figure
  report = (tmp_path / "digits_report.md").read_bytes()
  for configs, extra, message in [
      ("digits_vea", (), "--configs: digits_vea is no digits baseline of experiments/configs; choose from "),
      ("toy2d_gmm", (), "--configs: toy2d_gmm is no digits baseline"),
      ("digits_ddpm", (), f"no finished run of digits_ddpm in {tmp_path}; rerun with --train"),
      ("digits_vae", ("--write_docs",), "--write_docs with --tiny would replace the baselines' table")]:
    proc = run_main(f"--root={tmp_path}", f"--configs={configs}", "--tiny", "--notrain", *extra,
                    script=SCRIPT, check=False)
    assert proc.returncode == 1
    [error] = proc.stderr.strip().splitlines()
    assert error.startswith(f"error: {message}")
  # The docs' table holds every digits config: --write_docs refuses to replace it with some of them.
  for flag, message in [("--configs=digits_vae", "--write_docs replaces the baselines' table of every digits "
                                                 "config; drop --configs"),
                        ("--notrain", f"no finished run of digits_autoencoder in {tmp_path / 'empty'}, and "
                                      "--write_docs needs every digits config's; rerun with --train")]:
    proc = run_main(f"--root={tmp_path / 'empty'}", "--write_docs", "--notrain", flag, script=SCRIPT,
                    check=False)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith(f"error: {message}")
    assert not (tmp_path / "empty" / "digits_report.md").exists()
  # The full-size report does not take the :tiny run for the baseline.
  proc = run_main(f"--root={tmp_path}", "--configs=digits_vae", "--notrain", script=SCRIPT, check=False)
  assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1] == (
      f"error: {tmp_path / 'digits_vae'} holds the tiny-size run of digits_vae, not the full-size one this "
      f"report asks for; use another --root")
  assert (tmp_path / "digits_report.md").read_bytes() == report


def test_a_run_launched_with_a_tuple_override_is_relaunched_with_it(tmp_path):
  """A run of digits_vae with tuple fields overridden (stored in config.json as lists) is resumed or
  evaluated by the report with the same values, as tuples (they were dropped, and the launch refused);
  a string goes back unquoted (quoted, it became part of the value: "'linear'")."""
  config = load_config("digits_vae", "tiny")
  config.model.update(latent_dims=(8,), hidden=((8, 8),))
  config.optim.schedule = "linear" if config.optim.schedule != "linear" else "cosine"
  (tmp_path / "config.json").write_text(json.dumps(config_to_dict(config)))
  code = ("import json, pathlib, sys; sys.path.insert(0, sys.argv[1]); import digits_report; "
          "print(json.dumps(digits_report._stored_overrides('digits_vae', pathlib.Path(sys.argv[2]), "
          "'tiny')))")
  out = subprocess.run([sys.executable, "-c", code, str(SCRIPT.parent), str(tmp_path)], capture_output=True,
                       text=True, check=True).stdout
  assert sorted(json.loads(out)) == ["--config.model.hidden=((8, 8),)", "--config.model.latent_dims=(8,)",
                                     f"--config.optim.schedule={config.optim.schedule}"]
