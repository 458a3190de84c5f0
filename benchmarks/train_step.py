r"""Speed of one config's compiled train step, printed as JSON.

  python -m benchmarks.train_step --config=experiments/configs/toy2d_gmm.py [--repeats=20] [--profile_ops=15]

Reports compile time, ms per step (median of `repeats`, each one step on a fresh batch, blocking on
the result), examples per second, and model FLOP utilization: XLA's count of the step's FLOPs divided
by the step time and by this machine's measured matmul peak for train.compute_dtype's inputs. Data
loading is excluded: the batches are prepared beforehand. `--profile_ops=N` adds the step's N most
expensive XLA operations (`timing.op_profile`: milliseconds per step, result shape, the JAX operation
each came from), as do the other step benchmarks.
"""

from __future__ import annotations

import time

import jax
from absl import flags
from ml_collections import config_flags

from benchmarks.timing import (compiled_flops, emit, matmul_peaks, op_profile, time_calls,
                               without_persistent_cache)
from gm_jax import data as data_lib
from gm_jax import tasks
from gm_jax.train import command_line, sharding, step as step_lib

config_flags.DEFINE_config_file("config", None, "Config file (FILE or FILE:ARG).", lock_config=True)
flags.DEFINE_integer("repeats", 20, "Timed steps.", lower_bound=1)
flags.DEFINE_integer("warmup", 3, "Untimed steps after compilation.", lower_bound=0)
flags.mark_flags_as_required(["config"])
flags.DEFINE_integer("profile_ops", 0, "Also report the step's N most expensive XLA operations (top_ops).",
                     lower_bound=0)


def main(argv):
  del argv
  without_persistent_cache()
  config = flags.FLAGS.config
  dataset = data_lib.load_dataset(config.data)
  task = tasks.build(config, dataset)
  mesh = sharding.make_mesh()
  batch_size = config.data.batch_size * task.examples_per_step_factor
  it = data_lib.TrainIterator(dataset.train, batch_size, config.data.seed)
  n = flags.FLAGS.warmup + flags.FLAGS.repeats + 1
  batches = [sharding.put_batch(next(it), mesh) for _ in range(n)]
  init, train_step, _ = step_lib.from_config(task, config, mesh, jax.random.key(1))
  state = init(jax.random.key(config.seed), next(data_lib.TrainIterator(dataset.train, batch_size,
                                                                         config.data.seed)))

  start = time.perf_counter()
  lowered = train_step.jit(state).lower(state, batches[0])
  compiled = lowered.compile()
  compile_s = time.perf_counter() - start
  holder = {"state": state, "i": 0}

  def one_step(executable=compiled):
    holder["state"], metrics = executable(holder["state"], batches[holder["i"] % n])
    holder["i"] += 1
    jax.block_until_ready(metrics)

  stats = time_calls(one_step, warmup=flags.FLAGS.warmup, repeats=flags.FLAGS.repeats)
  flops = compiled_flops(compiled)
  peak = matmul_peaks()[config.train.compute_dtype]  # the peak of the step's matmul inputs
  step_s = stats["ms_median"] / 1e3
  record = {"benchmark": "train_step", "task": config.task, "batch_size": batch_size, "compile_s": compile_s,
            **stats, "examples_per_s": batch_size / step_s, "step_gflop": flops / 1e9 if flops else None,
            "matmul_peak_gflops": peak / 1e9, "mfu": flops / step_s / peak if flops else None}
  if flags.FLAGS.profile_ops:
    record["top_ops"] = op_profile(lowered, one_step, top=flags.FLAGS.profile_ops)
  emit(record)


if __name__ == "__main__":
  command_line.run(main)
