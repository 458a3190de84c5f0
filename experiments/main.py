r"""Launches an experiment: train, evaluate or sample a config.

  python experiments/main.py --config=experiments/configs/toy2d_gmm.py --workdir=/tmp/run
  python experiments/main.py --config=experiments/configs/toy2d_gmm.py:tiny --workdir=/tmp/run \
      --config.optim.learning_rate=3e-3
  python experiments/main.py --config=... --workdir=/tmp/run --mode=eval

The config is locked: overriding a field that does not exist is an error. Rerunning the same command
with the same workdir resumes from the latest checkpoint.

Several processes (hosts) run the same command with --distributed=auto on a cluster that JAX detects
(Cloud TPU, SLURM, ...), or with --coordinator_address=HOST:PORT --num_processes=N --process_id=I.
"""

from __future__ import annotations

import os
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Config file, optionally FILE:ARG (e.g. :tiny).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, samples and summary.")
flags.DEFINE_enum("mode", "train", ["train", "eval", "sample"], "What to do with the config.")
flags.DEFINE_enum("distributed", "off", ["off", "auto"],
                  "auto: jax.distributed.initialize() with no arguments, for clusters JAX detects (Cloud "
                  "TPU, SLURM, ...). off: one process, unless --coordinator_address is given.")
flags.DEFINE_string("coordinator_address", None,
                    "HOST:PORT of process 0; with --num_processes and --process_id, runs as one of "
                    "several jax.distributed processes.")
flags.DEFINE_integer("num_processes", None, "Number of processes (with --coordinator_address).",
                     lower_bound=1)
flags.DEFINE_integer("process_id", None, "This process's index in [0, num_processes).", lower_bound=0)
flags.mark_flags_as_required(["config", "workdir"])


def _fail(message: str) -> None:
  """Ends the launcher with one line on stderr (bad input or a failed run)."""
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.stdout.flush()
  # Exit at once so that late callbacks of background I/O threads cannot print after the message.
  os._exit(1)


def _bad_config_field(argv: list[str], error: Exception) -> str:
  """One line for an override of a field the locked config does not have (ml_collections raises
  AttributeError/KeyError with a multi-line 'Did you mean' text)."""
  text = str(error).encode().decode("unicode_escape")
  keys = re.findall(r"'(\w+)'", text)
  suggestion = re.search(r'Did you mean "(\w+)"', text)
  hint = f" (did you mean {suggestion.group(1)!r}?)" if suggestion else ""
  overrides = [a.split("=", 1)[0] for a in argv if a.startswith("--config.")]
  flag = next((o for o in overrides if keys and keys[0] in o[len("--config."):].split(".")), None)
  if flag is None:
    return f"bad --config override: {text.splitlines()[0] if text else type(error).__name__}"
  return f"{flag}: the config has no field {keys[0]!r}{hint}; see the config file for its fields"


def _config_file(argv: list[str]) -> str | None:
  """The file of --config=FILE[:ARG], if given."""
  for i, arg in enumerate(argv):
    if arg.startswith("--config="):
      return arg.split("=", 1)[1].split(":", 1)[0]
    if arg == "--config" and i + 1 < len(argv):
      return argv[i + 1].split(":", 1)[0]
  return None


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a bad config file, flag or config override reported as one line."""
  file = _config_file(argv)
  if file is not None and not os.path.isfile(file):
    _fail(f"config file {file!r} does not exist; pass --config=experiments/configs/NAME.py[:tiny]")
  try:
    rest = flags.FLAGS(argv)
  except flags.Error as e:
    lines = [line for line in str(e).splitlines() if line.strip()]
    # A config file that fails to load puts its own exception on the last line.
    _fail(re.sub(r"^\w+Error: ", "", lines[-1].strip()) if "parsing config file" in lines[0] else lines[0])
  except (AttributeError, KeyError) as e:
    if "get_config" in str(e):
      _fail(f"config file {file!r} defines no get_config(); a config file returns its ConfigDict from it")
    _fail(_bad_config_field(argv, e))
  else:
    if len(rest) > 1:
      _fail(f"unexpected arguments {rest[1:]}: every setting is a flag (--config.FIELD=VALUE, --workdir=...)")
    return rest
  return []


def init_distributed() -> None:
  """Initialises jax.distributed when asked to; must run before any other JAX call."""
  f = flags.FLAGS
  explicit = {k: f[k].value for k in ("coordinator_address", "num_processes", "process_id")
              if f[k].value is not None}
  if f.distributed == "off" and not explicit:
    return
  if f.distributed == "off" and len(explicit) < 3:
    missing = sorted({"coordinator_address", "num_processes", "process_id"} - set(explicit))
    _fail(f"missing {' and '.join('--' + m for m in missing)}: a multi-process run needs "
          f"--coordinator_address, --num_processes and --process_id (or --distributed=auto)")
  if "process_id" in explicit and "num_processes" in explicit and f.process_id >= f.num_processes:
    _fail(f"--process_id={f.process_id} must be below --num_processes={f.num_processes}")
  import jax

  try:
    jax.distributed.initialize(**explicit)  # no arguments: the cluster's environment says everything
  except Exception as e:  # jax raises RuntimeError/ValueError/... from the coordination service
    message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    _fail(f"jax.distributed.initialize failed: {message[:300]}")


def _one_line(e: BaseException) -> str:
  if isinstance(e, OSError) and e.strerror and not isinstance(e, FileNotFoundError):
    where = f": {e.filename}" if e.filename else ""
    hint = "; free some space and rerun the same command to resume" if e.errno == 28 else ""
    return f"{e.strerror}{where}{hint}"
  return str(e)


def main(argv, after_step=None):
  """Runs --mode on --config in --workdir; after_step(step) runs after each train step (a test hook)."""
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # checkpointing libraries log every file at INFO
  init_distributed()
  import jax

  from gm_jax import tasks
  from gm_jax.train import run_files

  logging.info("devices: %s", jax.devices())
  config = flags.FLAGS.config
  workdir = flags.FLAGS.workdir
  mode = flags.FLAGS.mode
  try:
    if mode == "train":
      result = tasks.train(config, workdir, after_step=after_step)
    elif mode == "eval":
      result = tasks.evaluate(config, workdir)
    else:
      result = {"samples": str(tasks.sample(config, workdir))}
  except (ValueError, OSError, RuntimeError, FloatingPointError) as e:
    # Bad input and failed runs end with one line that says what to change; the run's files are closed.
    _fail(_one_line(e))
  print(run_files.to_json(result, indent=2, default=str))


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
