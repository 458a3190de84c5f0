"""Warnings of the libraries the trainer calls that say nothing the user needs, dropped while one call
runs (each call site says why its warning is noise)."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from absl import logging as absl_logging


@contextlib.contextmanager
def absl_records_dropped(is_noise: Callable[[str], bool]) -> Iterator[None]:
  """Drops the absl logger's records whose message `is_noise` accepts while the block runs."""
  keep = lambda record: not is_noise(str(record.msg))
  logger = absl_logging.get_absl_logger()
  logger.addFilter(keep)
  try:
    yield
  finally:
    logger.removeFilter(keep)
