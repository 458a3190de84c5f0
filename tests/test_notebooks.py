"""Every notebook executes top to bottom in its tiny setting (its `TINY = False` line set to True)."""

import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path: pathlib.Path, tmp_path):
  nb = nbformat.read(path, as_version=4)
  params = [c for c in nb.cells if c.cell_type == "code" and "TINY = False" in c.source]
  assert params, f"{path.name} needs a parameter cell with `TINY = False`"
  params[0].source = params[0].source.replace("TINY = False", "TINY = True").replace(
      "/tmp/gm_jax_notebooks", str(tmp_path))
  NotebookClient(nb, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": str(tmp_path)}}).execute()
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.output_type == "error"]
  assert not errors


def test_there_are_notebooks():
  assert NOTEBOOKS
