r"""Compile time of the train step of every experiment config, full size and `:tiny`, as JSON lines.

  python -m benchmarks.compile_times [--only=shakespeare,dcgan] [--sizes=tiny --sizes=full] [--threads=0]

Compiles only (nothing is trained or initialized: the state is abstract); TFDS data sets are replaced
by tfds.testing.mock_data, which gives the real shapes, and text corpora by random characters. One line per
(config, size) with `compile_s`
(lowering plus XLA compilation of the step) or the error that prevented it, then a summary line with
the slowest configs.
"""

from __future__ import annotations

import pathlib
import time

import jax
from absl import flags

from benchmarks.timing import emit, use_threads, without_persistent_cache
from gm_jax import data as data_lib
from gm_jax import tasks
from gm_jax.data.text import random_characters
from gm_jax.train import command_line, sharding, step as step_lib
from gm_jax.train.defaults import load_config_file

flags.DEFINE_list("only", [], "Substrings of config names to include (default: all).")
flags.DEFINE_multi_enum("sizes", ["tiny", "full"], ["tiny", "full"], "tiny and/or full (--sizes=tiny).")
flags.DEFINE_integer("threads", 0, "Cores for XLA; 0: all this process may use.")

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "configs"


def compile_seconds(config) -> float:
  """Seconds to lower and compile the config's train step for its batch shape."""
  import tensorflow_datasets as tfds

  with tfds.testing.mock_data(num_examples=max(2 * config.data.batch_size, 64)):
    if config.data.name == "text":  # a mock corpus is too short: random characters of the same shape
      dataset = random_characters(config.data.context, size=100_000)
    else:
      dataset = data_lib.load_dataset(config.data)
    task = tasks.build(config, dataset)
    batch_size = config.data.batch_size * task.examples_per_step_factor
    batch = next(data_lib.TrainIterator(dataset.train, batch_size, config.data.seed))
  mesh = sharding.make_mesh()
  batch = sharding.put_batch(batch, mesh)
  init, train_step, _ = step_lib.from_config(task, config, mesh, jax.random.key(1))
  state = jax.eval_shape(lambda key, b: init(key, b), jax.random.key(0), batch)
  start = time.perf_counter()
  train_step.jit(state).lower(state, batch).compile()
  return time.perf_counter() - start


def main(argv):
  del argv
  threads = use_threads(flags.FLAGS.threads)
  without_persistent_cache()
  only = flags.FLAGS.only
  paths = [p for p in sorted(CONFIGS.glob("*.py")) if not only or any(s in p.stem for s in only)]
  if not paths:
    raise ValueError(f"--only={','.join(only)} matches no config in {CONFIGS}")
  rows = []
  for path in paths:
    for size in flags.FLAGS.sizes:
      record = {"benchmark": "compile_time", "config": path.stem, "size": size, "threads": threads}
      try:
        config = load_config_file(path, "tiny" if size == "tiny" else None)
        record["compile_s"] = compile_seconds(config)
      except Exception as e:  # noqa: BLE001 (reported, then the next config)
        record["error"] = f"{type(e).__name__}: {str(e)[:200]}"
      rows.append(record)
      emit(record)
  timed = sorted((r for r in rows if "compile_s" in r), key=lambda r: -r["compile_s"])
  emit({"benchmark": "compile_time_summary", "configs": len(rows), "failed": len(rows) - len(timed),
        "slowest": [(r["config"], r["size"], round(r["compile_s"], 1)) for r in timed[:8]],
        "over_10s": [(r["config"], r["size"]) for r in timed if r["compile_s"] > 10]})


if __name__ == "__main__":
  command_line.run(main)
