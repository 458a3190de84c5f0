"""The processes of a multi-process launch: that they agree, and that they stop together.

Each process runs the same program on its own host; a difference between them (config, workdir, mode,
device count, data) or an error on one of them would otherwise leave the others waiting in their next
collective, or failing there with a connection error whose cause is printed on one host only. Every
function here is called by every process (with one process, they do nothing but the local work).
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Any, Callable

import jax
import numpy as np

from gm_jax.data.dataset import Dataset
from gm_jax.data.pipeline import fingerprint as data_fingerprint
from gm_jax.train.config_checks import config_to_dict


def sync_processes(name: str) -> None:
  """Waits until every process has reached the point `name`."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)


def check_processes_agree(config, workdir: pathlib.Path, mode: str) -> None:
  """Every process of a multi-process launch runs one config in one workdir in one mode (train, eval or
  sample) on as many devices: a difference would leave them waiting on each other's collectives for ever
  (or fail in the batch's sharding), so each process compares the others' with its own."""
  if jax.process_count() == 1:
    return
  # Each process feeds its devices an equal share of the global batch (and process_allgather needs it).
  # Every process sees the whole device list.
  counts = [sum(d.process_index == i for d in jax.devices()) for i in range(jax.process_count())]
  if len(set(counts)) > 1:
    stop_every_process(f"the processes have different numbers of devices ({', '.join(map(str, counts))} in "
                        f"process order); give every process as many (the same XLA_FLAGS device count, "
                        f"CUDA_VISIBLE_DEVICES or TPU host)")
  launch = json.dumps({"config": config_to_dict(config), "workdir": str(workdir), "mode": mode},
                      sort_keys=True)
  differ = _processes_that_differ(launch)
  if differ:
    stop_every_process(f"process(es) {differ} were launched with another config, --workdir or --mode than "
                        f"process 0; launch every process with the same command apart from --process_id")


def check_processes_read_the_same_data(dataset: Dataset) -> None:
  """Every process of a multi-process launch loaded the same splits: each reads its part of every global
  batch from its own copy of the data, so copies that differ (another file at data.path on one host)
  would train and evaluate on a mixture without notice. Compared by the splits' sizes and fingerprints."""
  if jax.process_count() == 1:
    return
  splits = {name: (len(split), data_fingerprint(split))
            for name, split in (("train", dataset.train), ("test", dataset.test))}
  differ = _processes_that_differ(json.dumps(splits, sort_keys=True))
  if differ:
    stop_every_process(f"process(es) {differ} loaded other data than process 0 (this process: "
                        f"{splits['train'][0]} training and {splits['test'][0]} test examples); give every "
                        f"process the same files at data.path")


def check_processes_restored_alike(step: int, failure: str | None, checkpoints: pathlib.Path) -> None:
  """Every process restored checkpoint `step`, or none did (`failure`: why this process could not). Each
  process reads its own shards, so a checkpoint damaged in one process's files restores on the others,
  which would go on from a newer step than that process (a mixture of two states, or collectives that
  never match). Called after every attempt, so that the processes try the same steps in the same order."""
  if jax.process_count() == 1:
    return
  failures = _texts_of_every_process("" if failure is None else failure or "failed")
  failed = [i for i, text in enumerate(failures) if text]
  if failed and len(failed) < len(failures):
    which = f"process {failed[0]}" if len(failed) == 1 else f"processes {failed}"
    stop_every_process(f"checkpoint {checkpoints / str(step)} cannot be restored on {which} only "
                       f"({failures[failed[0]]}; each process reads its own shards of it): move it out of "
                       f"{checkpoints} and rerun")


def _processes_that_differ(text: str) -> list[int]:
  """The processes whose `text` differs from process 0's (compared by digest; every process calls this)."""
  from jax.experimental import multihost_utils

  digest = np.frombuffer(hashlib.sha256(text.encode()).digest()[:8], np.int32)
  digests = np.asarray(multihost_utils.process_allgather(digest)).reshape(jax.process_count(), -1)
  return [i for i in range(len(digests)) if not np.array_equal(digests[i], digests[0])]


def on_every_process(build: Callable[[], Any], what: str) -> Any:
  """build() on every process of a launch (one process: just build()). When it raises on any process,
  every process stops with that error, naming the process: the others would otherwise go on to their next
  collective and fail there with a connection error (or wait in it), the cause printed on one host only."""
  try:
    value, error = build(), None
  except Exception as e:  # noqa: BLE001 (re-raised below, on every process)
    value, error = None, e
  if jax.process_count() > 1:
    errors = _texts_of_every_process("" if error is None else f"{type(error).__name__}: {error}")
    failed = [(i, text) for i, text in enumerate(errors) if text]
    if failed and error is None:
      stop_every_process(f"process {failed[0][0]} failed {what}: {failed[0][1]}")
    if error is not None:
      jax.distributed.shutdown()
  if error is not None:
    raise error
  return value


def _texts_of_every_process(text: str, size: int = 1024) -> list[str]:
  """Every process's `text` (up to `size` bytes of UTF-8), in process order (every process calls this)."""
  from jax.experimental import multihost_utils

  gathered = multihost_utils.process_allgather(_padded_bytes(text, size))
  return [_unpadded_text(row) for row in np.asarray(gathered).reshape(jax.process_count(), size)]


def _padded_bytes(text: str, size: int) -> np.ndarray:
  """`text` as UTF-8 in `size` bytes (cut, or padded with zeros), an array every process can exchange."""
  raw = np.zeros(size, np.uint8)
  encoded = np.frombuffer(text.encode()[:size], np.uint8)
  raw[:len(encoded)] = encoded
  return raw


def _unpadded_text(raw) -> str:
  return bytes(np.asarray(raw)).rstrip(b"\0").decode(errors="replace")


def text_of_process_0(text: str, size: int = 4096) -> str:
  """Process 0's `text` (up to `size` bytes of UTF-8), in every process (every process calls this)."""
  if jax.process_count() == 1:
    return text
  from jax.experimental import multihost_utils

  return _unpadded_text(multihost_utils.broadcast_one_to_all(_padded_bytes(text, size)))


def stop_every_process(problem: str) -> None:
  """Raises `problem`, which every process found: they leave together, process 0 (which holds the
  coordination service) last, rather than one taking the service down while another still reads it."""
  jax.distributed.shutdown()
  raise ValueError(problem)
