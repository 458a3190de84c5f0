"""The language-model task end to end: the Markov-chain entropy rate, and the Shakespeare config on a
small corpus written by the test."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from gm_jax.data import markov
from gm_jax import tasks
from tests.conftest import load_config


def _train(config, workdir):
  config.train.progress_bar = False
  return tasks.train(config, str(workdir))


def test_markov_chain_entropy_rate_is_exact():
  chain = markov.MarkovChain(np.array([[0.9, 0.1], [0.5, 0.5]]))
  pi = chain.stationary
  np.testing.assert_allclose(pi, [5 / 6, 1 / 6])
  h = lambda p: -p * np.log(p) - (1 - p) * np.log(1 - p)
  assert chain.entropy_rate == pytest.approx(5 / 6 * h(0.1) + 1 / 6 * h(0.5))
  tokens = chain.sample(200_000, seed=0)
  assert chain.nll(tokens) == pytest.approx(chain.entropy_rate, abs=0.01)


def test_transformer_reaches_the_markov_chains_entropy_rate(tmp_path):
  summary = _train(load_config("markov_lm"), tmp_path)
  assert summary["estimator"] == "exact"
  assert abs(summary["nll_nats"] - summary["entropy_rate_nats"]) < 0.02
  assert summary["bpd"] == pytest.approx(summary["nll_nats"] / np.log(2))


def test_shakespeare_char_config_on_a_text_file(tmp_path):
  corpus = tmp_path / "corpus.txt"
  corpus.write_text("To be, or not to be, that is the question.\n" * 200)
  config = load_config("shakespeare_char_cpu", "tiny")
  config.data.path = str(corpus)
  summary = _train(config, tmp_path / "run")
  assert np.isfinite(summary["nll_nats"]) and summary["bpd"] > 0
  text = (tmp_path / "run" / "samples" / "step_0000010.txt").read_text()
  assert set(text) - set(corpus.read_text()) <= {"-"}  # samples use the corpus's characters


def test_shakespeare_char_config_under_mock_tfds(tmp_path):
  config = load_config("shakespeare_char_cpu", "tiny")
  config.data.context = 4  # the mock corpus has only 54 characters
  config.eval.sample_length = 4
  with tfds.testing.mock_data(num_examples=1):
    summary = _train(config, tmp_path)
  assert np.isfinite(summary["nll_nats"])
