"""Trains a config's :tiny size (digits_vae unless named) a few steps with its train state sharded over
mesh.fsdp devices and prints, as JSON, each state leaf's global and per-device shapes before and after the
steps, the state's bytes on the first device and in total, each step's metrics (losses, gradient
norms) and 16 samples drawn from
the initial state with its parameters perturbed alike. tests/train/test_fsdp.py runs it on 8 fake devices:
  python -m tests.train.fsdp_worker [CONFIG] FSDP..."""

import json
import sys
import tempfile

import jax
import numpy as np

from gm_jax import tasks
from gm_jax.train import sharding
from tests.conftest import load_config


def layout(state) -> dict[str, list]:
  """{leaf path: [global shape, the first device's shard shape]}."""
  return {sharding.leaf_path(path): [list(leaf.shape), list(leaf.addressable_shards[0].data.shape)]
          for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]}


def _perturbed(state):
  """The state with the same random offsets on every parameter whatever the mesh (initial output layers
  are zero, which would make a flow's couplings the identity), each leaf kept on its own placement."""
  rng = np.random.default_rng(0)
  shift = lambda a: jax.device_put(np.asarray(a) + 0.05 * rng.standard_normal(a.shape).astype(a.dtype),
                                   a.sharding)
  return state.replace(networks={name: net.replace(params=jax.tree.map(shift, net.params))
                                 for name, net in state.networks.items()})


def run(name: str, fsdp: int, num_steps: int = 3) -> dict:
  config = load_config(name, "tiny")
  config.mesh.fsdp = fsdp
  exp = tasks.experiment(config, tempfile.mkdtemp())
  try:
    state = exp.init_state()
    before = layout(state)
    device = jax.devices()[0]
    on_device = sum(s.data.nbytes for leaf in jax.tree.leaves(state) for s in leaf.addressable_shards
                    if s.device == device)
    total = sum(leaf.nbytes for leaf in jax.tree.leaves(state))
    samples = np.asarray(exp._draw_samples(_perturbed(state), 16)[0]).tolist()
    iterator, steps = exp.train_iterator(), []
    for _ in range(num_steps):
      state, metrics = exp.train_step(state, sharding.put_batch(next(iterator), exp.mesh))
      steps.append({k: np.asarray(v).ravel().tolist() for k, v in metrics.items()})
    return {"mesh": dict(exp.mesh.shape), "before": before, "after": layout(state), "device_bytes": on_device,
            "total_bytes": total, "metrics": steps, "samples": samples}
  finally:
    exp.checkpointer.close()


def main():
  args = sys.argv[1:]
  name = "digits_vae" if args[0].isdigit() else args.pop(0)
  json.dump({str(fsdp): run(name, fsdp) for fsdp in map(int, args)}, sys.stdout)


if __name__ == "__main__":
  main()
