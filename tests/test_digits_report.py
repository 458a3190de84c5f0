"""experiments/digits_report.py at :tiny size: it trains a run, reports it, reads it again, and a report
that finds nothing to report leaves the earlier one as it was."""

import json

from tests.conftest import REPO, run_main

SCRIPT = REPO / "experiments" / "digits_report.py"


def test_digits_report_trains_reports_and_keeps_its_table_on_bad_input(tmp_path):
  proc = run_main(f"--root={tmp_path}", "--configs=digits_vae", "--tiny", script=SCRIPT)
  [line] = proc.stdout.strip().splitlines()
  row = json.loads(line)
  summary = json.loads((tmp_path / "digits_vae" / "summary.json").read_text())
  assert row["config"] == "digits_vae" and row["bpd"] == summary["bpd"] and row["fd"] == summary["fd"]
  table = (tmp_path / "digits_report.md").read_text().splitlines()
  assert table[2].startswith(f"| digits_vae | vae | {summary['bpd']:.3f} ({summary['estimator']}) |")
  assert table[-1].startswith("| data floor: ")
  assert (tmp_path / "digits_report.png").stat().st_size > 0
  # Run again, the run is read, not trained again.
  again = run_main(f"--root={tmp_path}", "--configs=digits_vae", "--tiny", "--notrain", script=SCRIPT)
  assert json.loads(again.stdout.strip().splitlines()[-1]) == row
  report = (tmp_path / "digits_report.md").read_bytes()
  for configs, message in [
      ("digits_vea", "--configs: digits_vea is no digits baseline of experiments/configs; choose from "),
      ("toy2d_gmm", "--configs: toy2d_gmm is no digits baseline"),
      ("digits_ddpm", f"no finished run of digits_ddpm in {tmp_path}; rerun with --train")]:
    proc = run_main(f"--root={tmp_path}", f"--configs={configs}", "--tiny", "--notrain", script=SCRIPT,
                    check=False)
    assert proc.returncode == 1
    [error] = proc.stderr.strip().splitlines()
    assert error.startswith(f"error: {message}")
  # The full-size report does not take the :tiny run for the baseline.
  proc = run_main(f"--root={tmp_path}", "--configs=digits_vae", "--notrain", script=SCRIPT, check=False)
  assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1] == (
      f"error: {tmp_path / 'digits_vae'} holds the tiny-size run of digits_vae, not the full-size one this "
      f"report asks for; use another --root")
  assert (tmp_path / "digits_report.md").read_bytes() == report
