"""One code path for 1 device, many devices, and many processes, with replicated or sharded parameters.

A 2-D `Mesh` over every device with axes ('data', 'fsdp') of shape (devices / fsdp, fsdp). Batches are
split along their first axis over both axes (every device gets its own rows), so the data layout does not
depend on `fsdp`. The train state (parameters, optimizer state, EMA) is placed by rules that map a state
leaf's path to how it is split over the 'fsdp' axis (fully sharded data parallelism: each device of an
fsdp group holds 1/fsdp of those leaves, gathered whole where a step computes with them: `gathered`); with
fsdp = 1 every leaf is replicated. Each process supplies only its own rows of the global batch.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"
FSDP_AXIS = "fsdp"
BATCH_AXES = (DATA_AXIS, FSDP_AXIS)
# (regular expression searched in a state leaf's path, spec); the first rule that matches places the leaf.
# A spec is "auto" (the leaf's largest dimension divisible by the fsdp size is split over 'fsdp';
# replicated when none is), "replicated", or one mesh axis name or None per leading dimension.
DEFAULT_RULES = ((".*", "auto"),)


def make_mesh(fsdp: int = 1, devices=None) -> Mesh:
  devices = np.asarray(jax.devices() if devices is None else devices).reshape(-1)
  if not isinstance(fsdp, int) or fsdp < 1 or devices.size % fsdp:
    raise ValueError(f"mesh.fsdp={fsdp} must be a positive divisor of the number of devices "
                     f"({devices.size}); set --config.mesh.fsdp")
  return Mesh(devices.reshape(-1, fsdp), BATCH_AXES)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(BATCH_AXES))


def gathered(tree: Any, mesh: Mesh) -> Any:
  """`tree` (parameters, statistics or gradients) whole on every device, inside a jitted step: fully
  sharded data parallelism stores shards, computes with whole parameters on batch-split activations, and
  the optimizer's update takes its slice of the summed gradients. Left to carry the stored placement into
  the activations, XLA's partitioner returned gradients 4x too large where a reshape spreads a split
  dimension over several axes (a DCGAN generator's Dense -> BatchNorm -> (C, s, s) view at fsdp=8)."""
  if mesh.shape[FSDP_AXIS] == 1:
    return tree
  return jax.lax.with_sharding_constraint(tree, replicated(mesh))


def leaf_path(path) -> str:
  """A state leaf's path as the rules see it, e.g. 'networks/model/opt_state/0/mu/Dense_0/kernel'."""
  return jax.tree_util.keystr(path, simple=True, separator="/")


def _spec(spec, shape: tuple[int, ...], mesh: Mesh, name: str, pattern: str) -> P:
  fsdp = mesh.shape[FSDP_AXIS]
  if spec == "replicated":
    return P()
  if spec == "auto":
    divisible = [d for d in range(len(shape)) if shape[d] % fsdp == 0]
    if not divisible:
      return P()
    largest = max(divisible, key=lambda d: (shape[d], d))
    return P(*([None] * largest), FSDP_AXIS)
  axes = (spec,) if isinstance(spec, str) else tuple(spec)
  if len(axes) > len(shape) or any(a is not None and a not in mesh.shape for a in axes):
    raise ValueError(f"mesh.rules: {pattern!r} gives {name} (shape {shape}) the spec {spec!r}; use 'auto', "
                     f"'replicated' or at most {len(shape)} entries of {sorted(mesh.shape)} or None")
  for d, axis in enumerate(axes):
    if axis is not None and shape[d] % mesh.shape[axis]:
      raise ValueError(f"mesh.rules: {pattern!r} splits dimension {d} of {name} (shape {shape}) over "
                       f"'{axis}' of size {mesh.shape[axis]}, which does not divide it; change the rule")
  return P(*axes)


def check_rules(rules: Sequence[Any]) -> tuple[tuple[str, Any], ...]:
  """`rules` as (regular expression, spec) tuples, each spec 'auto', 'replicated' or mesh axis names (each
  at most once) and None; anything else is one line, whatever mesh.fsdp is (with fsdp = 1 the rules
  place nothing yet)."""
  checked = []
  for rule in rules:
    try:
      pattern, spec = rule
      re.compile(pattern)  # TypeError for a pattern that is not a string
      axes = () if spec in ("auto", "replicated") else (spec,) if isinstance(spec, str) else tuple(spec)
      named = [a for a in axes if a is not None]
      ok = all(a in BATCH_AXES for a in named) and len(set(named)) == len(named)  # each axis splits once
    except (TypeError, ValueError, re.error):
      ok = False
    if not ok:
      raise ValueError(f"mesh.rules: {rule!r} is not a (regular expression, spec) pair whose spec is 'auto', "
                       f"'replicated' or a tuple of {BATCH_AXES} names (each at most once) and None; fix "
                       f"--config.mesh.rules")
    checked.append((pattern, spec))
  return tuple(checked)


def state_shardings(state: Any, mesh: Mesh, rules: Sequence[tuple[str, Any]] = DEFAULT_RULES) -> Any:
  """The NamedSharding of every leaf of `state` (arrays or ShapeDtypeStructs) by the first matching rule;
  everything is replicated on a mesh whose 'fsdp' axis has size 1 (plain data parallelism)."""
  if mesh.shape[FSDP_AXIS] == 1:
    return jax.tree.map(lambda _: replicated(mesh), state)
  compiled = [(re.compile(pattern), pattern, spec) for pattern, spec in rules]

  def place(path, leaf):
    name = leaf_path(path)
    for regex, pattern, spec in compiled:
      if regex.search(name):
        return NamedSharding(mesh, _spec(spec, tuple(leaf.shape), mesh, name, pattern))
    return replicated(mesh)

  return jax.tree_util.tree_map_with_path(place, state)


def check_batch_size(global_batch_size: int, mesh: Mesh, what: str = "data.batch_size") -> None:
  if global_batch_size % mesh.size:
    raise ValueError(f"{what}={global_batch_size} must be divisible by the number of devices "
                     f"({mesh.size}); change {what.split('=')[0]}")


def put_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles the global batch from every process's local rows, split over every device. One call for
  the whole batch: a call per array took 1.6x the host time, which bounds a small model's steps."""
  return jax.make_array_from_process_local_data(batch_sharded(mesh),
                                                {k: np.asarray(v) for k, v in local_batch.items()})


def put_replicated(tree: Any, mesh: Mesh) -> Any:
  return jax.device_put(tree, replicated(mesh))
