"""The language-model task end to end: the Markov-chain entropy rate, and the Shakespeare config on a
small corpus written by the test."""

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from gm_jax import data as data_lib
from gm_jax import tasks
from gm_jax.data import markov
from gm_jax.tasks import language_model
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


def test_transformer_reaches_the_markov_chains_entropy_rate(tmp_path, runtime_bound_train_step):
  """markov_lm's model and data, trained for a sixth of its schedule (it ends 0.003 nats above the floor;
  the baseline's 1,500 steps reach 0.0003), without its intermediate evaluations."""
  config = load_config("markov_lm")
  config.train.update(num_steps=250, eval_every=0, checkpoint_every=250)
  summary = _train(config, tmp_path)
  assert summary["estimator"] == "exact"
  assert abs(summary["nll_nats"] - summary["entropy_rate_nats"]) < 0.01
  assert summary["bpd"] == pytest.approx(summary["nll_nats"] / np.log(2))


def test_evaluation_scores_every_test_token_after_the_first_once(tmp_path):
  """One pass over the test split (in padded batches) scores len(test) - 1 tokens: none of the < context
  tokens after the last full stride is dropped, and none the final window repeats is counted twice."""
  corpus = tmp_path / "corpus.txt"
  corpus.write_text("".join(chr(97 + i * 7 % 26) for i in range(1203)))  # 121 test tokens, context 16
  config = load_config("shakespeare_char_cpu", "tiny")
  config.data.path = str(corpus)
  dataset = data_lib.load_dataset(config.data)
  assert (len(dataset.test.tokens) - 1) % config.data.context  # a remainder after the last stride
  task = language_model.build(config, dataset)
  batches = list(data_lib.eval_batches(dataset.test, 4))
  params = {"model": task.init(jax.random.key(0), batches[0])["model"]["params"]}
  eval_fn = jax.jit(task.eval_fn)
  count = sum(float(eval_fn(params, {}, batch, jax.random.key(1))["nll_nats"][1]) for batch in batches)
  assert count == len(dataset.test.tokens) - 1


@pytest.mark.parametrize("stride", [0, 1, 5])
def test_test_windows_at_a_stride_score_each_token_with_that_context(tmp_path, stride):
  """The test NLL at data.eval_stride S is the sum of each test token's log-loss given the tokens before it
  in the window that scores it, computed here from the model's logits on those windows: windows at
  multiples of S, the first scoring all its targets and the others their last S, and a final window ending
  at the last token (S = 0: consecutive windows). At S = 1 token p sees min(p, context) tokens."""
  corpus = tmp_path / "corpus.txt"
  corpus.write_text("".join(chr(97 + i * 7 % 26) for i in range(1203)))  # 121 test tokens, context 16
  config = load_config("shakespeare_char_cpu", "tiny")
  config.data.update(path=str(corpus), eval_stride=stride)
  dataset = data_lib.load_dataset(config.data)
  task = language_model.build(config, dataset)
  batches = list(data_lib.eval_batches(dataset.test, 8))
  params = {"model": task.init(jax.random.key(0), batches[0])["model"]["params"]}
  params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(2), p.shape), params)
  eval_fn = jax.jit(task.eval_fn)
  sums = [eval_fn(params, {}, batch, jax.random.key(1))["nll_nats"] for batch in batches]
  total, count = (sum(float(s[i]) for s in sums) for i in (0, 1))
  # Independently: token p is predicted from the window start(p) .. p - 1, where start(p) is the start of
  # the window that scores it (stride S: windows at multiples of S, each scoring its last S targets).
  tokens, context = dataset.test.tokens, config.data.context
  step = stride or context
  start = lambda p: 0 if p <= context else min((p - context - 1) // step + 1, (len(tokens) - 1 - context) //
                                                                               step) * step
  starts = np.array([start(p) for p in range(1, len(tokens))])
  last = len(tokens) - 1 - context  # the final window ends at the last token
  starts = np.where(starts + context < np.arange(1, len(tokens)), last, starts)
  if stride == 1:
    np.testing.assert_array_equal(starts, np.maximum(np.arange(1, len(tokens)) - context, 0))
  windows = tokens[starts[:, None] + np.arange(context)]
  model = language_model.TransformerLM(language_model.transformer_config(config, dataset))
  logits = model.apply({"params": params["model"]}, windows)
  at = np.arange(1, len(tokens)) - starts - 1  # the prediction's position in its window
  log_probs = jax.nn.log_softmax(logits[np.arange(len(at)), at])
  expected = -float(np.sum(np.asarray(log_probs)[np.arange(len(at)), tokens[1:]]))
  assert count == len(tokens) - 1
  assert total == pytest.approx(expected, rel=1e-5)


def test_shakespeare_char_config_on_a_text_file(tmp_path):
  corpus = tmp_path / "corpus.txt"
  corpus.write_text("To be, or not to be, that is the question.\n" * 200)
  config = load_config("shakespeare_char_cpu", "tiny")
  config.data.path = str(corpus)
  summary = _train(config, tmp_path / "run")
  assert np.isfinite(summary["nll_nats"]) and summary["bpd"] > 0
  text = (tmp_path / "run" / "samples" / f"step_{config.train.num_steps:07d}.txt").read_text()
  # The samples are written decoded (any token decodes to a corpus character; ids would show digits).
  assert set(text) - set(corpus.read_text()) <= {"-"}
  # The run evaluated with every token given its whole context: a change eval mode takes.
  config.data.eval_stride = 1
  result = tasks.evaluate(config, tmp_path / "run")
  assert result["eval_config_changes"] == {"data.eval_stride": {"stored": 0, "now": 1}}
  assert np.isfinite(result["nll_nats"]) and result["nll_nats"] != summary["nll_nats"]


def test_shakespeare_char_config_under_mock_tfds(tmp_path):
  config = load_config("shakespeare_char_cpu", "tiny")
  config.data.context = 4  # the mock corpus has only 54 characters
  config.eval.sample_length = 4
  with tfds.testing.mock_data(num_examples=1):
    summary = _train(config, tmp_path)
  assert np.isfinite(summary["nll_nats"])


def test_samples_start_from_the_texts_token_frequencies(tmp_path):
  """No begin-of-text token: the first token of a sample follows the training text's frequencies (a fixed
  token 0 was the NUL byte at byte level, which a text never holds); greedy decoding starts from the most
  frequent one."""
  corpus = tmp_path / "corpus.txt"
  corpus.write_text("aaab" * 300)
  config = load_config("shakespeare_char_cpu", "tiny")
  config.data.update(path=str(corpus), level="byte")
  dataset = data_lib.load_dataset(config.data)
  task = language_model.build(config, dataset)
  batch = next(data_lib.TrainIterator(dataset.train, 2, 0))
  params = {"model": task.init(jax.random.key(0), batch)["model"]["params"]}
  n = 4000
  first = np.asarray(jax.jit(lambda k: task.sample_fn(params, {}, k, n))(jax.random.key(1))[:, 0])
  share_a = np.mean(first == ord("a"))
  assert set(np.unique(first)) == {ord("a"), ord("b")}
  assert share_a == pytest.approx(0.75, abs=5 * np.sqrt(0.75 * 0.25 / n))
  config.eval.sample_temperature = 0.0
  greedy = language_model.build(config, dataset).sample_fn(params, {}, jax.random.key(1), 3)
  assert np.all(np.asarray(greedy)[:, 0] == ord("a"))
