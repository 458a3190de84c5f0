"""One data-parallel code path for 1 device, many devices, and many processes.

A 1-D `Mesh` over every device with axis 'data': batches are split along their first axis, the train
state is replicated. Each process supplies only its own rows of the global batch.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
  devices = np.asarray(jax.devices() if devices is None else devices)
  return Mesh(devices.reshape(-1), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(global_batch_size: int, mesh: Mesh, what: str = "data.batch_size") -> None:
  if global_batch_size % mesh.size:
    raise ValueError(f"{what}={global_batch_size} must be divisible by the number of devices "
                     f"({mesh.size})")


def put_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles the global batch from every process's local rows, sharded along 'data'."""
  sharding = batch_sharded(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local_batch.items()}


def put_replicated(tree: Any, mesh: Mesh) -> Any:
  return jax.device_put(tree, replicated(mesh))
