r"""One cross-family report on digits: likelihood and sample quality of every digits baseline side by side.

  python experiments/digits_report.py --root=/tmp/gm_jax/report [--configs=digits_vae,digits_ddpm] \
      [--write_docs] [--tiny]

For each `experiments/configs/digits_*.py` (every family's digits baseline; the feature classifier
excluded) it reads the finished run in ROOT/<config> — evaluating it with `--mode=eval` when its
summary has no sample-quality numbers yet — or trains it there first. It prints one JSON line per
config and writes ROOT/digits_report.md (the table) and ROOT/digits_report.png (FD-digits against
bits/dim, and the judged samples of every config); `--write_docs` also puts both into
docs/BASELINES.md (between its digits-report markers) and docs/images/, for every digits config only
(it refuses --configs and missing runs, which would drop rows from that table).

Wall time is the training run's, from its config.json to its last checkpoint for every row (a resumed
run's includes the time between its launches); sampling time is
milliseconds per 1,000 samples after compilation; NFE is the network evaluations per sample
(1 for one-pass generators: VAEs, flows, GANs).
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

from absl import flags

from gm_jax.train import command_line

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = REPO / "experiments" / "configs"
BEGIN, END = "<!-- digits-report:begin -->", "<!-- digits-report:end -->"

flags.DEFINE_string("root", "/tmp/gm_jax/report", "Parent of the runs' workdirs (one per config).")
flags.DEFINE_list("configs", [], "Config names (default: every experiments/configs/digits_*.py).")
flags.DEFINE_bool("train", True, "Train configs that have no run in ROOT yet.")
flags.DEFINE_bool("write_docs", False, "Also write the table and figure into docs/.")
flags.DEFINE_bool("tiny", False, "Each config's :tiny size (a quick check of the report, not a baseline).")


def digits_configs() -> list[str]:
  return sorted(p.stem for p in CONFIGS.glob("digits_*.py") if p.stem != "digits_classifier")


def _size() -> str | None:
  return "tiny" if flags.FLAGS.tiny else None


def _launch(name: str, workdir: pathlib.Path, *extra: str) -> None:
  size = f":{_size()}" if _size() else ""
  cmd = [sys.executable, str(REPO / "experiments" / "main.py"), f"--config={CONFIGS / name}.py{size}",
         f"--workdir={workdir}", *extra]
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
  if proc.returncode != 0:
    raise RuntimeError(f"{' '.join(cmd[1:])} failed: {proc.stderr.strip().splitlines()[-1:]}")


def _stored_overrides(name: str, workdir: pathlib.Path, size: str | None = "as asked") -> list[str]:
  """--config.FIELD=VALUE for every scalar field outside `eval` in which the run's stored config differs
  from the config file at `size` (the report's by default): the run was launched with overrides, and its
  evaluation then uses the run's config."""
  from gm_jax.train.defaults import as_tuples, load_config_file

  stored = json.loads((workdir / "config.json").read_text())
  size = _size() if size == "as asked" else size
  current = json.loads(load_config_file(CONFIGS / f"{name}.py", size).to_json_best_effort())
  flags_out = []

  def walk(a, b, prefix):
    for key, value in a.items():
      if prefix == "" and key == "eval":
        continue
      if isinstance(value, dict):
        walk(value, b.get(key, {}), f"{prefix}{key}.")
      elif b.get(key) != value:  # a list stored from a tuple field goes back as a tuple; a string as is
        text = value if isinstance(value, str) else repr(as_tuples(value))
        flags_out.append(f"--config.{prefix}{key}={text}")

  walk(stored, current, "")
  return flags_out


def wall_seconds(workdir: pathlib.Path) -> float | None:
  """From the run's config.json to its last checkpoint, the same for every row (a resumed run's includes
  the time between its launches)."""
  steps = [p for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()]
  if not steps:
    return None
  last = max(steps, key=lambda p: int(p.name))
  return last.stat().st_mtime - (workdir / "config.json").stat().st_mtime


def result_of(name: str, root: pathlib.Path, train: bool) -> dict | None:
  """The run's summary with sample-quality fields: read, evaluated, or trained first."""
  workdir = root / name
  summary_path = workdir / "summary.json"
  other = None if _size() else "tiny"
  free = ("--config.train.progress_bar=", "--config.mesh.")  # may differ in any run
  if (workdir / "config.json").exists() and not [
      o for o in _stored_overrides(name, workdir, other) if not o.startswith(free)]:
    raise ValueError(f"{workdir} holds the {other or 'full'}-size run of {name}, not the "
                     f"{_size() or 'full'}-size one this report asks for; use another --root")
  if not (workdir / "config.json").exists():
    if not train:
      return None
    _launch(name, workdir, "--config.train.progress_bar=False")
  elif not summary_path.exists():
    if not train:  # unfinished: its latest checkpoint is not the run's result
      return None
    _launch(name, workdir, "--config.train.progress_bar=False", *_stored_overrides(name, workdir))
  summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
  newest = lambda pattern: max(workdir.glob(pattern), key=lambda p: p.stat().st_mtime, default=None)
  # The judged samples of the numbers shown: the training's own, whatever evaluations ran since.
  picture = workdir / "samples" / f"quality_step_{summary.get('step', 0):07d}.png"
  if "fd" not in summary:  # a run from before sample quality was measured: its evaluation, made once
    evaluated = newest("eval_step_*.json")
    if evaluated is None or "fd" not in json.loads(evaluated.read_text()):
      _launch(name, workdir, "--mode=eval", *_stored_overrides(name, workdir))
      evaluated = newest("eval_step_*.json")
    summary = json.loads(evaluated.read_text())
    picture = newest("samples/eval_quality_step_*.png")
  return {"config": name, "family": json.loads((workdir / "config.json").read_text())["task"],
          "wall_seconds": wall_seconds(workdir), "picture": picture, **summary}


def _fmt(value, digits: int = 3) -> str:
  if value is None:
    return "-"
  if isinstance(value, str):
    return value
  return f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:.3g}"


def table(rows: list[dict]) -> str:
  head = ("| config | family | bpd (estimator) | FD-digits | KID | precision | recall | density | coverage | "
          "IS | train wall time | ms / 1,000 samples | NFE |\n|" + "---|" * 13 + "\n")
  floor = next((r for r in rows if "fd_floor" in r), None)
  lines = []
  for r in rows:
    of = f", {r['likelihood_of']}" if r.get("likelihood_of") else ""  # e.g. a binarization's, not the digits'
    bpd = f"{r['bpd']:.3f} ({r['estimator']}{of})" if r.get("bpd") is not None else "-"
    wall = f"{r['wall_seconds'] / 60:.1f} min" if r.get("wall_seconds") else "-"
    lines.append(f"| {r['config']} | {r['family']} | {bpd} | {_fmt(r.get('fd'), 1)} | "
                 f"{_fmt(r.get('kid'), 1)} | "
                 f"{_fmt(r.get('precision'))} | {_fmt(r.get('recall'))} | {_fmt(r.get('density'))} | "
                 f"{_fmt(r.get('coverage'))} | {_fmt(r.get('inception_score'), 2)} | {wall} | "
                 f"{_fmt(r.get('sample_ms_per_1000'), 0)} | {int(r.get('nfe', 1))} |")
  if floor:
    lines.append(f"| data floor: {floor['floor_num_samples']} training digits | - | - | "
                 f"{_fmt(floor['fd_floor'], 1)} | {_fmt(floor['kid_floor'], 1)} | "
                 f"{_fmt(floor['precision_floor'])} | {_fmt(floor['recall_floor'])} | "
                 f"{_fmt(floor['density_floor'])} | {_fmt(floor['coverage_floor'])} | "
                 f"{_fmt(floor.get('inception_score_floor'), 2)} | - | - | - |")
  return head + "\n".join(lines) + "\n"


def figure(rows: list[dict], path: pathlib.Path) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.image as mpimg
  import matplotlib.pyplot as plt

  grids = [(r["config"], r["picture"]) for r in rows if r["picture"] is not None and r["picture"].exists()]
  cols = 4
  grid_rows = -(-len(grids) // cols)
  fig = plt.figure(figsize=(3 * cols, 3.2 * (grid_rows + 1.4)), dpi=90)
  scatter = fig.add_subplot(grid_rows + 2, 1, (1, 2))
  floor = next((r["fd_floor"] for r in rows if "fd_floor" in r), None)
  no_bpd_x = max([r["bpd"] for r in rows if r.get("bpd") is not None] or [2.0]) + 0.3
  for r in rows:
    x = r.get("bpd") if r.get("bpd") is not None else no_bpd_x
    scatter.scatter([x], [r["fd"]], s=25)
    scatter.annotate(r["config"].removeprefix("digits_"), (x, r["fd"]), fontsize=8, xytext=(3, 3),
                     textcoords="offset points")
  if floor is not None:
    scatter.axhline(floor, color="0.5", linestyle="--", linewidth=1)
    scatter.annotate("data floor", (scatter.get_xlim()[0], floor), fontsize=8, color="0.4")
  scatter.axvline(no_bpd_x - 0.15, color="0.85", linewidth=1)
  scatter.set_yscale("log")
  scatter.set_xlabel("test bits/dim (right of the grey line: no likelihood)")
  scatter.set_ylabel("FD-digits (log scale)")
  for i, (name, file) in enumerate(grids):
    ax = fig.add_subplot(grid_rows + 2, cols, 2 * cols + i + 1)
    ax.imshow(mpimg.imread(file), cmap="gray", vmin=0.0, vmax=1.0)  # levels as saved, not stretched
    ax.set_title(name.removeprefix("digits_"), fontsize=9)
    ax.axis("off")
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def write_docs(markdown: str, figure_path: pathlib.Path) -> None:
  docs = REPO / "docs" / "BASELINES.md"
  text = docs.read_text()
  if BEGIN not in text or END not in text:
    raise ValueError(f"docs/BASELINES.md has no {BEGIN} ... {END} markers")
  head, rest = text.split(BEGIN, 1)
  docs.write_text(head + BEGIN + "\n" + markdown + END + rest.split(END, 1)[1])
  shutil.copy(figure_path, REPO / "docs" / "images" / figure_path.name)


def main(argv):
  del argv
  if flags.FLAGS.write_docs and flags.FLAGS.tiny:
    raise ValueError("--write_docs with --tiny would replace the baselines' table with smoke-test numbers; "
                     "drop one of them")
  root = pathlib.Path(flags.FLAGS.root).expanduser().resolve()  # the runs are launched from the repository
  names = flags.FLAGS.configs or digits_configs()
  unknown = [n for n in names if n not in digits_configs()]
  if unknown:
    raise ValueError(f"--configs: {', '.join(unknown)} is no digits baseline of experiments/configs; choose "
                     f"from {', '.join(digits_configs())}")
  if flags.FLAGS.write_docs and flags.FLAGS.configs:  # the docs' table would lose the other configs' rows
    raise ValueError("--write_docs replaces the baselines' table of every digits config; drop --configs "
                     "(or --write_docs: the report in --root is written either way)")
  root.mkdir(parents=True, exist_ok=True)
  rows = []
  for name in names:
    row = result_of(name, root, flags.FLAGS.train)
    if row is None and flags.FLAGS.write_docs:
      raise ValueError(f"no finished run of {name} in {root}, and --write_docs needs every digits config's; "
                       f"rerun with --train")
    if row is None:
      print(json.dumps({"config": name, "status": "no run; rerun with --train"}), flush=True)
      continue
    rows.append(row)
    print(json.dumps({k: row.get(k) for k in ("config", "bpd", "estimator", "fd", "fd_floor", "kid",
                                              "precision", "recall", "density", "coverage", "wall_seconds",
                                              "sample_ms_per_1000", "nfe")}), flush=True)
  if not rows:  # an earlier report stays as it was
    raise ValueError(f"no finished run of {', '.join(names)} in {root}; rerun with --train")
  markdown = table(rows)
  # Both made before either replaces the earlier report's, so that the two always belong together.
  partial = root / "digits_report.partial.png"
  figure(rows, partial)
  (root / "digits_report.md").write_text(markdown)
  partial.replace(root / "digits_report.png")
  if flags.FLAGS.write_docs:
    write_docs(markdown, root / "digits_report.png")


if __name__ == "__main__":
  command_line.run(main)
