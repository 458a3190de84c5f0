"""Stopping on SIGTERM (a scheduler's preemption, `timeout`, `kill`) without losing work.

Python's default ends the process at once: a checkpoint being written stays a temporary directory the
next run discards, and the steps since the last checkpoint are lost. Here a SIGTERM during the training
steps and between them (`deferred`) is recorded, and the trainer saves a checkpoint of the step it has
reached and stops (`requested`); anywhere else (an evaluation, eval and sample modes) it raises
`Stopped`, a SystemExit(143), at once, as Ctrl-C raises KeyboardInterrupt, so the run's cleanup finishes
the checkpoint being written and removes the output names it reserved, and the trainer, stopped in an
evaluation between checkpoints, first saves the step it has reached with that evaluation left to the
rerun. Python drops an exception raised while a garbage-collector callback or a finalizer runs, so the
long loops outside the steps (evaluation batches, sample chunks) also ask `stop_if_requested`. A second
SIGTERM ends the process at once.

Under jax.distributed (any number of processes), its preemption service takes SIGTERM over: a signal to
any process is shared, and every process reaches the same sync step
(`multihost_utils.reached_preemption_sync_point`), where they save and stop together (one process
stopping alone would leave the others waiting in their collectives). Outside the training steps such a
run only logs the signal and goes on (its final evaluation, eval and sample modes) to the end.
"""

from __future__ import annotations

import contextlib
import signal

import jax
from absl import logging
from jax.experimental import multihost_utils

EXIT_CODE = 128 + signal.SIGTERM  # what a shell reports for a process ended by SIGTERM

_deferring = False
_received = False


def install() -> None:
  """Handles SIGTERM as the module says; call before jax.distributed.initialize, which replaces it."""
  signal.signal(signal.SIGTERM, _on_sigterm)


class Stopped(SystemExit):
  """SIGTERM outside the training steps."""

  def __init__(self):
    super().__init__(EXIT_CODE)


def _on_sigterm(signum, frame):
  del signum, frame
  global _received
  signal.signal(signal.SIGTERM, signal.SIG_DFL)
  _received = True
  if _deferring:
    logging.warning("SIGTERM: saving a checkpoint of this step, then stopping")
    return
  logging.warning("SIGTERM: stopping once the checkpoint being written is complete")
  raise Stopped()


def received() -> bool:
  """Whether this process's handler has seen SIGTERM (not asked of the other processes)."""
  return _received


def stop_if_requested() -> None:
  """Raises Stopped if SIGTERM arrived outside the steps and its exception was dropped (raised while a
  garbage-collector callback ran, say); between the parts of long loops."""
  if _received and not _deferring:
    raise Stopped()


@contextlib.contextmanager
def deferred(defer: bool = True):
  """Within it a SIGTERM is only recorded, for `requested` to report after the step; with defer=False, inside
  a deferred region, it raises Stopped again (on entry, if one was recorded). Nests."""
  global _deferring
  before, _deferring = _deferring, defer
  try:
    if not defer:
      stop_if_requested()
    yield
  finally:
    _deferring = before


def requested(step: int) -> bool:
  """Whether to save a checkpoint of `step` and stop: this process received SIGTERM during the steps, or
  (under jax.distributed, one process or several) all processes reached the sync step after one received
  it. Call once per step, on every process, from the same starting step."""
  # Without jax.distributed the sync point is always False (no client), and the handler above decides.
  synced = jax.config.jax_enable_preemption_service and multihost_utils.reached_preemption_sync_point(step)
  return bool(synced) or _received
