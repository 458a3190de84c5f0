"""Each family's sampling and evaluation options: a value that cannot work is a one-line error when the
task is built (before training, and before an --mode=eval or sample run restores anything)."""

import pytest

from gm_jax import data as data_lib
from gm_jax import tasks
from tests.conftest import load_config

CASES = [
    ("toy2d_ddpm", {"sampler": "ddim", "sampler_steps": 0}, r"eval.sampler_steps=0 must be >= 1 for the ddim"),
    ("toy2d_ddpm", {"sampler": "ode", "sampler_steps": -1}, r"eval.sampler_steps=-1 must be >= 0 for the ode"),
    ("toy2d_ddpm", {"ode_steps": -2}, r"eval.ode_steps=-2 must be >= 0 \(0: adaptive\)"),
    ("toy2d_vpsde", {"vlb_time_samples": 0}, r"eval.vlb_time_samples=0 must be >= 1"),
    ("toy2d_realnvp", {"sample_temperature": 0.0}, r"sample_temperature must be > 0 for flow sampling"),
    ("markov_lm", {"sample_length": 0}, r"eval.sample_length=0 must be in \[1, 16\]"),
    ("markov_lm", {"sample_temperature": -1.0}, r"eval.sample_temperature=-1.0 must be >= 0 \(0: greedy\)"),
    ("markov_lm", {"sample_top_k": 100}, r"eval.sample_top_k=100 must be in \[0, 8\]"),
    ("toy2d_vae", {"iwae_chunk": 0}, r"eval.iwae_samples=.* and eval.iwae_chunk=0 >= 1"),
]


@pytest.mark.parametrize("name,fields,message", CASES, ids=[f"{n}-{next(iter(f))}" for n, f, _ in CASES])
def test_an_eval_option_that_cannot_work_is_refused(name, fields, message):
  config = load_config(name, "tiny")
  config.eval.update(fields)
  with pytest.raises(ValueError, match=message):
    tasks.build(config, data_lib.load_dataset(config.data))
