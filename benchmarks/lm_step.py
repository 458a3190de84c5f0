r"""The char GPT's train step (shakespeare_char_cpu: 4 layers, 4 heads, 128 dims, context 64, batch 12,
AdamW) beside the same model in PyTorch, timed in one run, as one JSON line.

  python -m benchmarks.lm_step [--config.train.compute_dtype=bfloat16] [--reference=torch|none]

The corpus is not needed: random tokens over the Shakespeare character vocabulary (65 symbols) stand in
for it, since a step's cost does not depend on the token values. gm_jax's step is the trainer's own
compiled step; PyTorch's is nanoGPT's (fused causal attention, AdamW with decay on matrices only,
gradient clipping) in float32 with as many threads as XLA:CPU. Rounds of gm_jax and PyTorch steps
alternate so that changes in machine load hit both alike; `ratio` is gm_jax's median over PyTorch's.
Also reported: compile time, XLA's FLOP count and MFU against the measured matmul peak of the step's
compute dtype, and the step's memory (XLA's buffer assignment) beside PyTorch's peak (see
torch_reference.step_peak_bytes).
"""

from __future__ import annotations

import time

import jax
import numpy as np
from absl import flags

from benchmarks.timing import (add_timings, compiled_flops, emit, jax_step_memory_bytes, matmul_peaks,
                               config_name, op_profile, require_reference, time_interleaved,
                               use_threads, without_persistent_cache)
from gm_jax import data as data_lib
from gm_jax.data.text import random_characters
from gm_jax.tasks import language_model
from gm_jax.train import command_line, sharding, step as step_lib

command_line.define_config_with_default("experiments/configs/shakespeare_char_cpu.py", "LM config.")
flags.DEFINE_enum("reference", "torch", ["torch", "none"], "Time the PyTorch reference too, or not.")
flags.DEFINE_integer("threads", 0, "Cores (and threads) for both frameworks; 0: all this process may use.")
flags.DEFINE_integer("rounds", 10, "Interleaved timing rounds.", lower_bound=1)
flags.DEFINE_integer("per_round", 10, "Steps of each framework per round.", lower_bound=1)
flags.DEFINE_integer("profile_ops", 0, "Also report the step's N most expensive XLA operations (top_ops).",
                     lower_bound=0)

VOCAB = 65  # Tiny Shakespeare's characters: the vocabulary of a config whose data does not state one


def main(argv):
  del argv
  require_reference(flags.FLAGS.reference)
  threads = use_threads(flags.FLAGS.threads)
  without_persistent_cache()
  config = flags.FLAGS.config
  vocab = config.data.get("vocab_size") or VOCAB
  dataset = random_characters(config.data.context, vocab)
  task = language_model.build(config, dataset)
  mesh = sharding.make_mesh()
  batch_size = config.data.batch_size
  it = data_lib.TrainIterator(dataset.train, batch_size, config.data.seed)
  batches = [sharding.put_batch(next(it), mesh) for _ in range(8)]
  init, train_step, _ = step_lib.from_config(task, config, mesh, jax.random.key(1))
  state = init(jax.random.key(config.seed), batches[0])
  start = time.perf_counter()
  lowered = train_step.jit(state).lower(state, batches[0])
  compiled = lowered.compile()
  compile_s = time.perf_counter() - start
  num_params = sum(p.size for p in jax.tree.leaves(state.networks["model"].params))
  holder = {"state": state, "i": 0}

  def jax_step(executable=compiled):
    holder["state"], metrics = executable(holder["state"], batches[holder["i"] % len(batches)])
    holder["i"] += 1
    jax.block_until_ready(metrics)

  fns = {"jax": jax_step}
  record = {"benchmark": "lm_step", "config": config_name(flags.FLAGS["config"]),
            "data": f"random tokens, vocab {vocab}",
            "compute_dtype": config.train.compute_dtype, "batch_size": batch_size,
            "context": config.data.context, "num_params": num_params, "compile_s": compile_s,
            "threads": threads,
            "memory_mb": (jax_step_memory_bytes(compiled) or 0) / 2**20}
  if flags.FLAGS.reference == "torch":
    import torch

    from benchmarks import torch_reference as ref

    ref.set_threads()
    ref.seed(0)
    model = ref.TorchGPT(language_model.transformer_config(config, dataset))
    if ref.num_params(model) != num_params:
      raise RuntimeError(f"the PyTorch GPT has {ref.num_params(model)} parameters, gm_jax's {num_params}")
    torch_step = ref.gpt_step(model, config.optim, config.train.ema_decay)
    torch_batches = [torch.from_numpy(np.array(b["x"])).long() for b in batches]
    count = {"i": 0}

    def torch_run():
      torch_step(torch_batches[count["i"] % len(torch_batches)])
      count["i"] += 1

    fns["torch"] = torch_run
    for _ in range(2):  # the optimizer's state exists from the first step on
      torch_run()
    record["reference_memory_mb"] = ref.step_peak_bytes(torch_run, model, torch_step.optimizer) / 2**20
  stats = time_interleaved(fns, warmup=5, rounds=flags.FLAGS.rounds, per_round=flags.FLAGS.per_round)
  add_timings(record, stats)
  flops = compiled_flops(compiled)
  peaks = matmul_peaks()
  peak = peaks["bfloat16" if config.train.compute_dtype == "bfloat16" else "float32"]
  step_s = record["ms_median"] / 1e3
  record.update({"step_gflop": flops / 1e9 if flops else None,
                 "matmul_peak_gflops": {k: v / 1e9 for k, v in peaks.items()},
                 "mfu": flops / step_s / peak if flops else None})
  if flags.FLAGS.profile_ops:
    record["top_ops"] = op_profile(lowered, jax_step, top=flags.FLAGS.profile_ops)
  emit(record)


if __name__ == "__main__":
  command_line.run(main)
