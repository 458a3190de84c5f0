"""One of several jax.distributed processes training the tiny toy2d GMM; prints its summary as JSON.

usage: python -m tests.train.multihost_worker PROCESS_ID NUM_PROCESSES PORT WORKDIR
"""

import json
import sys

import jax


def main():
  process_id, num_processes, port, workdir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=num_processes,
                             process_id=process_id)
  from gm_jax import tasks
  from tests.conftest import load_config

  config = load_config("toy2d_gmm", "tiny")
  config.train.progress_bar = False
  summary = tasks.train(config, workdir)
  result = {"summary": summary, "process_count": jax.process_count(), "devices": jax.device_count()}
  print("\n" + json.dumps(result), flush=True)  # last line; collective libraries also print to stdout


if __name__ == "__main__":
  main()
