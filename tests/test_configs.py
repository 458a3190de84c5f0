"""Every config's `:tiny` size end to end: train (with its final evaluation, sample quality and sample
files), and, for one config of each family, resume after an interruption.

A run is trained once straight through. Its workdir, cut back to its middle checkpoint as a run killed after
that checkpoint would leave it (metric rows past the checkpoint included), is rerun and must end with the
same parameters, training metrics and likelihood numbers (it skips the sample files and the sample-quality
measurement, which depend only on those parameters). What a resume restores, the train state's pytree, is
laid out by the family; the data iterator's position is the same TrainIterator's for every data source
(tests/data/test_pipeline.py). Configs within a family differ in losses, networks and data, which their
straight runs cover, so one resumed config per family checks it, the one with the richest state: EMA,
BatchNorm statistics, ActNorm's data-dependent initialization, two players (the file's test time in whole
suites on one machine the same day: 469 s with one per family and data source, 395 s with one per family).
Resuming after an exception and after SIGKILL mid-run is tested on one config in test_end_to_end.py.
Variants add the code paths that no config's default reaches. TFDS data is mocked, and text configs read a
corpus written here, so the test needs no download. (--mode=eval and --mode=sample are tested on one
config in test_end_to_end.py.)
"""

from __future__ import annotations

import json
import math

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from gm_jax import data as data_lib
from gm_jax import tasks
from gm_jax.train.defaults import TINY_STEPS, base_config
from gm_jax.train.config_checks import MISSING, config_differences, config_to_dict, field_value
from tests.conftest import CONFIGS, cut_back_to, load_config, run_metrics, without_wall_clock

CONFIG_NAMES = [p.stem for p in sorted(CONFIGS.glob("*.py"))]
RUNS = [(name, "tiny", {}) for name in CONFIG_NAMES] + [
    ("toy2d_gan", "grid,tiny", {"objective.loss": "minimax"}),
    ("toy2d_gan", "tiny", {"objective.loss": "hinge"}),
    ("toy2d_maf", "tiny", {"model.transform": "affine"}),
    ("digits_vae", "tiny", {"model.decoder": "bernoulli", "data.binarize": True}),
]
# One config of each family, the richest state of its family where they differ, over five data sources.
RESUMED = ("binarized_mnist_iwae", "dcgan_celeba64", "digits_classifier", "digits_pixelcnn",
           "shakespeare_char", "toy2d_ddpm", "toy2d_glow", "toy2d_gmm")
# Run-time bound at the suite's compiler level 0 (tests/conftest.py): the Row LSTM's 3,072 network evaluations
# per 32x32x3 sample took 16.8 s against 10.7 s at level 1.
RUNTIME_BOUND_CONFIGS = ("pixelrnn_cifar10",)
# Not here, to keep the suite's time: variational dequantization (tests/models/test_flows.py), the Row LSTM
# (tests/models/test_pixelrnn.py) and two-layer IWAE training (digits_hvae's run) have their own tests.


def test_tiny_is_one_size_per_family_applied_last_and_other_arguments_are_refused():
  full, tiny = load_config("digits_vdm"), load_config("digits_vdm", "tiny")  # digits_vdm loads digits_ddpm
  assert tiny.process.name == full.process.name == "vdm" and tiny.train.num_steps == TINY_STEPS
  family_fields = lambda config: {k: config.model[k] for k in ("channels", "channel_mults", "num_res_blocks")}
  assert family_fields(tiny) == family_fields(load_config("ddpm_cifar10", "tiny")) != family_fields(full)
  grid = load_config("toy2d_gan", "grid,tiny")
  assert grid.data.geometry.side == 5 and grid.train.num_steps == TINY_STEPS
  with pytest.raises(ValueError, match="unknown config argument 'big'; use ':tiny' or nothing"):
    load_config("digits_ddpm", "tiny,big")
  with pytest.raises(ValueError, match="unknown config argument 'ring,big'"):
    load_config("toy2d_gan", "ring,big")


def _leaves(tree: dict, prefix: str = ""):
  for key, value in tree.items():
    yield from _leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]


def _without(tree: dict, path: str) -> dict:
  tree = json.loads(json.dumps(tree))
  *parents, last = path.split(".")
  inner = tree
  for key in parents:
    inner = inner[key]
  del inner[last]
  return tree


def test_a_run_from_before_a_family_field_differs_only_where_the_config_moved_it():
  """A stored config.json lacking a field of its family's default config (its run predates the field)
  differs from today's config exactly where the experiment config sets another value than the family's."""
  base_fields = set(_leaves(config_to_dict(base_config())))
  checked = 0
  for name in CONFIG_NAMES:
    now = config_to_dict(load_config(name))
    starts = [config_to_dict(make()) for make in tasks.DEFAULT_CONFIGS.get(now["task"], ())]
    for field in sorted({f for start in starts for f in _leaves(start)} - base_fields):
      if field_value(now, field) == MISSING:
        continue
      moved = all(field_value(start, field) != field_value(now, field) for start in starts)
      assert config_differences(_without(now, field), now) == ([field] if moved else []), (name, field)
      checked += 1
  assert checked > 500


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_full_size_config_builds_its_networks(name, tmp_path):
  # Only `:tiny` trains here, so the full sizes' shapes (what a real run starts with) are traced, not run.
  config = load_config(name)
  _write_corpus_for_text(config, tmp_path)
  with tfds.testing.mock_data(num_examples=8):
    dataset = data_lib.load_dataset(config.data)
    task = tasks.build(config, dataset)
    batch = next(data_lib.TrainIterator(dataset.train, 2, config.data.seed))
  params = jax.eval_shape(task.init, jax.random.key(0), batch)
  assert jax.tree.leaves(params)


def test_one_config_of_each_family_is_resumed():
  families = {}
  for name in CONFIG_NAMES:
    families.setdefault(load_config(name, "tiny").task, []).append(name)
  resumed = {family: sorted(set(names) & set(RESUMED)) for family, names in families.items()}
  assert {family: names for family, names in resumed.items() if len(names) != 1} == {}
  assert set(RESUMED) <= set(CONFIG_NAMES)


def _write_corpus_for_text(config, tmp_path):
  """A written corpus for text configs (the mock TFDS corpus is too short for them); the caller mocks TFDS."""
  if config.data.name == "text":
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("To be, or not to be, that is the question.\n" * 200)
    config.data.path = str(corpus)


def _check_summary(summary: dict, exp, config, workdir) -> None:
  likelihood = exp.task.likelihood
  if likelihood is None:
    assert summary["estimator"] is None
  else:
    assert summary["estimator"] == likelihood.estimator and math.isfinite(summary["nll_nats"])
    assert summary.get("likelihood_of") == (likelihood.likelihood_of or None)
    if likelihood.discrete:
      assert summary["bpd"] == pytest.approx(summary["nll_nats"] / (likelihood.num_dims * np.log(2)))
    else:
      assert "bpd" not in summary
    if config.data.name in ("toy2d", "markov"):
      assert {"entropy_nats", "entropy_rate_nats"} & set(summary)  # the data floor beside the model
  # Bounds on a discrete likelihood are never negative; an importance-weighted bound is the tighter one.
  assert all(v > 0 for k, v in summary.items() if k.endswith("bpd"))
  if "elbo_nll_nats" in summary and summary["estimator"].startswith("iwae"):
    assert summary["nll_nats"] <= summary["elbo_nll_nats"] + 0.05
  if exp.task.sample_fn is not None:
    assert any((workdir / "samples").glob(f"*step_{config.train.num_steps:07d}.*"))
    if exp.feature_space is not None:
      assert summary["num_samples"] == config.eval.quality_samples
      assert summary["fd"] >= 0 and summary["fd_floor"] >= 0


@pytest.mark.parametrize("name,arg,overrides", RUNS,
                         ids=[f"{n}:{a}" + "".join(f",{k}={v}" for k, v in o.items()) for n, a, o in RUNS])
def test_tiny_config_trains_and_resumes(name, arg, overrides, tmp_path, request):
  if name in RUNTIME_BOUND_CONFIGS:
    request.getfixturevalue("runtime_bound_train_step")
  config = load_config(name, arg)
  for field, value in overrides.items():
    section, key = field.split(".")
    config[section][key] = value
  config.train.progress_bar = False
  steps = config.train.num_steps
  middle = max(steps // 2, 1)
  resumes = name in RESUMED and not overrides
  if resumes:  # a checkpoint and a metrics row at the middle step, so a run cut back to it resumes from there
    config.train.update(checkpoint_every=middle, log_every=middle, async_checkpoints=False)
  _write_corpus_for_text(config, tmp_path)
  straight, resumed = tmp_path / "straight", tmp_path / "resumed"
  with tfds.testing.mock_data(num_examples=8):
    summary = tasks.train(config, straight)
    assert summary["step"] == steps
    exp, networks = _restored(config, straight)
    _check_summary(summary, exp, config, straight)
    if not resumes:
      return
    resume_config = config.copy_and_resolve_references()
    resume_config.eval.feature_space = "none"
    resume_config.train.num_samples = 0
    cut_back_to(straight, resumed, middle, resume_config)
    resumed_summary = without_wall_clock(tasks.train(resume_config, resumed))
    _, resumed_networks = _restored(resume_config, resumed)
  assert resumed_summary == {k: v for k, v in summary.items() if k in resumed_summary}
  assert len(resumed_summary) > 2  # the step and the likelihood or losses, at least
  rows = lambda workdir: [r for r in run_metrics(workdir) if r["split"] == "train"]
  assert rows(resumed) == rows(straight)
  for a, b in zip(jax.tree.leaves(networks), jax.tree.leaves(resumed_networks), strict=True):
    np.testing.assert_array_equal(a, b)


def _restored(config, workdir):
  """The Experiment of a finished run and its final networks, on the host."""
  exp = tasks.experiment(config, workdir)
  try:
    state, _ = exp.restore_latest()
  finally:
    exp.checkpointer.close()
  return exp, jax.device_get(state.networks)


@pytest.mark.parametrize("name,settings", [
    ("ddpm_cifar10", {"data.random_flip": True}),
    ("score_sde_vp_cifar10", {"data.random_flip": True, "eval.sampler": "euler_maruyama",
                              "eval.ode_exact_trace": False}),
    ("vdm_cifar10", {"data.random_flip": False, "process.learned": "endpoints", "optim.name": "adamw",
                     "optim.b2": 0.99, "optim.weight_decay": 0.01, "optim.warmup_steps": 100,
                     "optim.grad_clip_norm": 0.0, "eval.ddim_eta": 1.0}),
    ("realnvp_cifar10", {"data.random_flip": True, "model.num_levels": 2}),
    ("nsf_cifar10", {"data.random_flip": True, "model.num_bins": 4, "train.num_steps": 200_000}),
])
def test_paper_configs_train_as_their_authors_did(name, settings):
  """Settings read from the authors' code and papers (each config's docstring names them): flips where
  they trained with them, VDM's AdamW and ancestral sampler, score SDE's corrector-free VP sampler and
  Hutchinson trace estimate in the ODE likelihood, RealNVP's single downscaling of CIFAR-10, NSF's 8-bit
  CIFAR-10 bins and length."""
  config = load_config(name)
  assert {field: config[field.split(".")[0]][field.split(".")[1]] for field in settings} == settings
