"""Imports run one way: experiments -> tasks -> train, evaluation, sampling -> objectives -> models,
diffusion, data. A module may import from its own layer or any layer below it, never from above."""

from __future__ import annotations

import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
LAYERS = [("models", "diffusion", "data"), ("objectives",), ("train", "evaluation", "sampling"), ("tasks",)]
RANK = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}
EXPERIMENTS_RANK = len(LAYERS)


def _rank_of_file(path: pathlib.Path) -> int:
  parts = path.relative_to(REPO).parts
  return RANK[parts[1]] if parts[0] == "gm_jax" else EXPERIMENTS_RANK


def _imported_packages(path: pathlib.Path, package: tuple[str, ...] | None = None) -> list[tuple[int, str]]:
  """(line, gm_jax subpackage) of every import of gm_jax code in the file, including local and relative
  imports (resolved against `package`, by default the file's own: e.g. ('gm_jax', 'train'))."""
  package = package if package is not None else path.relative_to(REPO).parts[:-1]
  found = []
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      modules = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = ".".join(package[:len(package) - node.level + 1] if node.level else ())
      module = ".".join(filter(None, [base, node.module or ""]))
      modules = [module] if module != "gm_jax" else [f"gm_jax.{a.name}" for a in node.names]
    else:
      continue
    found += [(node.lineno, m.split(".")[1]) for m in modules if m.startswith("gm_jax.")]
  return found


def _checked_files() -> list[pathlib.Path]:
  files = [p for p in (REPO / "gm_jax").rglob("*.py") if len(p.relative_to(REPO).parts) > 2]
  return sorted(files + list((REPO / "experiments").rglob("*.py")))


def test_every_gm_jax_package_has_a_layer():
  packages = {p.name for p in (REPO / "gm_jax").iterdir() if (p / "__init__.py").exists()}
  assert packages == set(RANK)


@pytest.mark.parametrize("path", _checked_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_imports_never_reach_a_layer_above(path):
  own = _rank_of_file(path)
  upward = [f"line {line}: gm_jax.{package}" for line, package in _imported_packages(path)
            if RANK[package] > own]
  assert not upward, f"{path.relative_to(REPO)} imports from a layer above its own: {upward}"


def test_the_checker_sees_upward_imports(tmp_path):
  bad = tmp_path / "bad.py"
  bad.write_text("def f():\n  from gm_jax.tasks import vae\nimport gm_jax.train.loop\n"
                 "from gm_jax import data\nfrom ..tasks import gan\nfrom .. import sampling\n"
                 "from . import step\n")
  assert sorted(_imported_packages(bad, package=("gm_jax", "train"))) == [
      (2, "tasks"), (3, "train"), (4, "data"), (5, "tasks"), (6, "sampling"), (7, "train")]
