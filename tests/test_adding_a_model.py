"""docs/adding_a_model.md is true: its example family, defined outside gm_jax, trains, evaluates,
samples and resumes through the unchanged trainer."""

import dataclasses
import json

import numpy as np
import pytest

from examples import diagonal_gaussian
from gm_jax.train import loop
from gm_jax.train.task import Likelihood
from tests.conftest import cut_back_to, run_metrics, without_wall_clock


def test_a_family_outside_gm_jax_runs_through_the_trainer(tmp_path):
  config = diagonal_gaussian.get_config()
  config.train.progress_bar = False
  summary = loop.train(config, str(tmp_path), diagonal_gaussian.build)
  assert summary["step"] == 200 and summary["estimator"] == "exact"
  # The best diagonal Gaussian for the ring of radius 2 (std 0.02): per coordinate the variance is
  # E[x^2] = 2 + 0.02^2, so its NLL is log(2 pi e (2 + 0.0004)) nats over two coordinates; the trainer
  # reports the ring's entropy floor beside it.
  best = np.log(2 * np.pi * np.e * (2 + 0.02**2))
  assert summary["nll_nats"] == pytest.approx(best, abs=0.05)
  assert summary["entropy_nats"] < summary["data_nll_nats"] + 0.1 < summary["nll_nats"]
  assert (tmp_path / "samples" / "step_0000200.png").exists()
  evaluated = loop.evaluate(config, str(tmp_path), diagonal_gaussian.build)
  assert evaluated["nll_nats"] == pytest.approx(summary["nll_nats"], abs=1e-6)
  assert json.loads((tmp_path / "config.json").read_text())["task"] == "diagonal_gaussian"
  # A run killed after its step-100 checkpoint resumes there and ends as the uninterrupted run did.
  straight, resumed = tmp_path / "straight", tmp_path / "resumed"
  config.train.checkpoint_every = 100
  summary = loop.train(config, str(straight), diagonal_gaussian.build)
  cut_back_to(straight, resumed, 100, config)
  again = loop.train(config, str(resumed), diagonal_gaussian.build)
  assert without_wall_clock(again) == without_wall_clock(summary)
  rows = lambda workdir: [without_wall_clock(r) for r in run_metrics(workdir) if r["split"] == "train"]
  assert rows(resumed) == rows(straight) and len(rows(straight)) == 4
  tiny = diagonal_gaussian.get_config("tiny")  # the smoke size docs/adding_a_model.md promises
  assert tiny.train.num_steps < config.train.num_steps and tiny.data.batch_size < config.data.batch_size


def test_samples_not_judged_for_want_of_a_feature_space_builder_are_named(tmp_path, caplog):
  """loop.train without gm_jax.tasks.build_feature_space measures no sample quality: a config that asks
  for it (eval.feature_space other than 'none') is told so rather than left without fd unseen."""
  config = diagonal_gaussian.get_config("tiny")
  config.eval.feature_space = "raw"
  exp = loop.Experiment(config, tmp_path, diagonal_gaussian.build, read_only=True)
  with caplog.at_level("WARNING"):
    assert exp.feature_space is None
  assert ("eval.feature_space='raw' is not measured: this run was given no feature-space builder"
          in caplog.text)
  exp.checkpointer.close()


def test_a_likelihood_naming_a_metric_the_task_does_not_report_is_one_line(tmp_path):
  config = diagonal_gaussian.get_config("tiny")
  build = lambda config, dataset: dataclasses.replace(
      diagonal_gaussian.build(config, dataset), likelihood=Likelihood("nll", "exact", 2, discrete=False))
  exp = loop.Experiment(config, tmp_path, build, read_only=True)
  with pytest.raises(ValueError, match=r"names the metric 'nll', which its eval_fn and summarize do not "
                                       r"report \(they report \['nll_nats'\]\)"):
    exp.likelihood_report({"nll_nats": 1.0})
  exp.checkpointer.close()
