"""How far the host may run ahead of the devices.

JAX returns from a jitted call before the program has run, so a loop that never reads a result queues
every program at once. XLA:CPU aborts such a queue of sharded programs over several devices: with more
than a few dozen queued, the participants of a cross-device sum stop meeting within its 40 s rendezvous
timeout (exit 134; 100 queued DCGAN steps on 8 devices were enough). A few programs ahead already hide
the dispatch latency on an accelerator, and each one queued holds its inputs in device memory.
"""

from __future__ import annotations

import collections
from typing import Any

import jax

PROGRAMS_AHEAD = 4


class DispatchWindow:
  """Keeps at most `ahead` dispatched programs unfinished: `add` (a program's outputs, right after its
  dispatch) waits for the program dispatched `ahead` calls earlier and returns its outputs, which are then
  ready to read without waiting; `drain` returns the outputs still held, oldest first."""

  def __init__(self, ahead: int = PROGRAMS_AHEAD):
    if ahead < 1:
      raise ValueError(f"ahead={ahead} must be at least 1")
    self._ahead = ahead
    self._queued: collections.deque = collections.deque()

  def add(self, outputs: Any) -> Any | None:
    self._queued.append(outputs)
    if len(self._queued) <= self._ahead:
      return None
    return jax.block_until_ready(self._queued.popleft())

  def drain(self) -> list[Any]:
    drained = list(self._queued)
    self._queued.clear()
    return drained
