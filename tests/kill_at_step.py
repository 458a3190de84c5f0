"""experiments/main.py whose training process SIGKILLs itself right after dispatching a given step (or
sends itself another signal: STEP:TERM), or as the evaluation or the checkpoint of that step begins
(STEP:TERM:eval, STEP:TERM:save), or between the step and its evaluation, as the trainer asks whether to
stop (STEP:TERM:between).

  python tests/kill_at_step.py STEP[:SIGNAL[:eval|save|between]] --config=... --workdir=...

The resume tests use it to crash a run at a known point through the trainer's after_step hook.
"""

from __future__ import annotations

import functools
import os
import pathlib
import signal
import sys

from absl import app

from gm_jax.train import command_line

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "experiments"))
import main as launcher  # noqa: E402


def kill_at(step: int, signal_number: int, current: int) -> None:
  if current == step:
    os.kill(os.getpid(), signal_number)


def signal_in_evaluation(step: int, signal_number: int) -> None:
  from gm_jax.train import loop

  evaluate = loop.Experiment.evaluate

  def signalled(self, state):
    kill_at(step, signal_number, int(state.step))
    return evaluate(self, state)

  loop.Experiment.evaluate = signalled


def signal_in_checkpoint(step: int, signal_number: int) -> None:
  from gm_jax.train import checkpoint

  save = checkpoint.Checkpointer.save

  def signalled(self, at_step, *args, **kwargs):
    kill_at(step, signal_number, at_step)
    return save(self, at_step, *args, **kwargs)

  checkpoint.Checkpointer.save = signalled


def signal_between_steps(step: int, signal_number: int) -> None:
  from gm_jax.train import termination

  requested = termination.requested

  def signalled(at_step):
    kill_at(step, signal_number, at_step)
    return requested(at_step)

  termination.requested = signalled


if __name__ == "__main__":
  step, name, where = (sys.argv.pop(1).split(":") + ["", ""])[:3]
  signal_number = getattr(signal, "SIG" + (name or "KILL"))
  after_step = functools.partial(kill_at, int(step), signal_number)
  if where:
    where_to_signal = {"eval": signal_in_evaluation, "save": signal_in_checkpoint,
                       "between": signal_between_steps}
    where_to_signal[where](int(step), signal_number)
    after_step = None
  app.run(functools.partial(launcher.main, after_step=after_step), flags_parser=command_line.parse_flags)
