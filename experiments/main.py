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

import signal
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from gm_jax.train import command_line, termination

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


def init_distributed() -> None:
  """Initialises jax.distributed when asked to; must run before any other JAX call."""
  f = flags.FLAGS
  explicit = {k: f[k].value for k in ("coordinator_address", "num_processes", "process_id")
              if f[k].value is not None}
  if f.distributed == "off" and not explicit:
    return
  if f.distributed == "off" and len(explicit) < 3:
    missing = sorted({"coordinator_address", "num_processes", "process_id"} - set(explicit))
    command_line.fail(f"missing {' and '.join('--' + m for m in missing)}: a multi-process run needs "
                      f"--coordinator_address, --num_processes and --process_id (or --distributed=auto)")
  host, _, port = explicit.get("coordinator_address", "h:0").rpartition(":")
  if not host or not port.isdigit():
    command_line.fail(f"--coordinator_address={f.coordinator_address!r} must be HOST:PORT, where process 0 "
                      f"listens (e.g. 127.0.0.1:12345)")
  if "process_id" in explicit and "num_processes" in explicit and f.process_id >= f.num_processes:
    command_line.fail(f"--process_id={f.process_id} must be below --num_processes={f.num_processes}")
  import jax

  # While initialize waits for the other processes, Python's SIGTERM handler cannot run (the wait is one
  # call into C++): a process whose peers never start ignored SIGTERM until JAX's own 300 s timeout. Nothing
  # is written yet, so the signal ends it at once; at the end JAX's preemption service takes SIGTERM over.
  signal.signal(signal.SIGTERM, signal.SIG_DFL)
  if len(explicit) == 3:  # initialize returns once every process has connected, silently until then
    print(f"process {f.process_id} of {f.num_processes}: connecting to {f.coordinator_address}, which waits "
          f"until all {f.num_processes} processes have started", file=sys.stderr, flush=True)
  try:
    jax.distributed.initialize(**explicit)  # no arguments: the cluster's environment says everything
  except Exception as e:  # jax raises RuntimeError/ValueError/... from the coordination service
    message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    command_line.fail(f"jax.distributed.initialize failed: {message[:300]}")


def main(argv, after_step=None):
  """Runs --mode on --config in --workdir; after_step(step) runs after each train step (a test hook)."""
  termination.install()  # a multi-process run's connection sets it aside; JAX's preemption service then
                         # takes SIGTERM over
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # checkpointing libraries log every file at INFO
  init_distributed()
  import jax

  from gm_jax import data as data_lib
  from gm_jax import tasks
  from gm_jax.train import run_files

  logging.info("devices: %s", jax.devices())
  config = flags.FLAGS.config
  workdir = flags.FLAGS.workdir
  mode = flags.FLAGS.mode
  try:
    overridden = config_flags.get_override_values(flags.FLAGS["config"])
    data_lib.check_overrides_are_read(config.data, [k[len("data."):] for k in overridden
                                                    if k.startswith("data.")])
    if mode == "train":
      result = tasks.train(config, workdir, after_step=after_step)
    elif mode == "eval":
      result = tasks.evaluate(config, workdir)
    else:
      result = tasks.sample(config, workdir)
  except command_line.REPORTED_ERRORS as e:
    # Bad input and failed runs end with one line that says what to change; the run's files are closed.
    command_line.fail(command_line.one_line(e))
  print(run_files.to_json(result, indent=2, default=str))


if __name__ == "__main__":
  app.run(main, flags_parser=command_line.parse_flags)
