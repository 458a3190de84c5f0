import json

from tests.conftest import REPO, run_main

SCRIPT = REPO / "experiments" / "export_digits_classifier.py"


def test_a_failed_export_is_one_line_and_leaves_no_output_directory(tmp_path):
  """A workdir holding another run: the script printed a traceback and left an empty --out behind."""
  (tmp_path / "run").mkdir()
  (tmp_path / "run" / "config.json").write_text(json.dumps({"task": "gmm"}))
  proc = run_main(f"--workdir={tmp_path / 'run'}", f"--out={tmp_path / 'out'}", script=SCRIPT, check=False)
  assert proc.returncode == 1
  lines = proc.stderr.strip().splitlines()
  assert lines[-1].startswith(f"error: workdir {tmp_path / 'run'} holds a run with a different config"), lines
  assert "Traceback" not in proc.stderr
  assert not (tmp_path / "out").exists()
