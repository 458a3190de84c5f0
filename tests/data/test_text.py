import dataclasses

import numpy as np
import pytest

from gm_jax.data import pipeline, text


def test_char_tokenizer_round_trip_and_vocab():
  tok = text.CharTokenizer.fit("hello world")
  assert tok.vocab_size == len(set("hello world"))
  assert tok.decode(tok.encode("world hello")) == "world hello"
  with pytest.raises(ValueError, match="not in the tokenizer"):
    tok.encode("z")


def test_byte_tokenizer_handles_unicode():
  tok = text.ByteTokenizer()
  assert tok.decode(tok.encode("naïve")) == "naïve"


def test_split_is_90_10_and_windows_are_shifted_targets(tmp_path):
  corpus = "".join(chr(97 + i % 26) for i in range(1000))
  path = tmp_path / "corpus.txt"
  path.write_text(corpus)
  ds = text.load(str(path), context=16)
  assert len(ds.train.tokens) == 900 and len(ds.test.tokens) == 100
  x = ds.train[np.array([5])]["x"][0]
  assert ds.spec.extras["tokenizer"].decode(x) == corpus[5:22]


def test_training_windows_are_every_position_unstored_and_fingerprint_as_when_stored(tmp_path):
  """The training starts were an int64 array (twice the int32 tokens' memory); as a range they give the
  same windows and the same fingerprint, so runs checkpointed with the array still resume."""
  path = tmp_path / "corpus.txt"
  path.write_text("".join(chr(97 + i * i % 26) for i in range(1000)))
  train = text.load(str(path), context=16).train
  assert isinstance(train.starts, range) and len(train) == 900 - 16
  stored = dataclasses.replace(train, starts=np.arange(len(train), dtype=np.int64))
  indices = np.array([0, 5, len(train) - 1, -1, -len(train)])
  np.testing.assert_array_equal(train[indices]["x"], stored[indices]["x"])
  assert pipeline.fingerprint(train) == pipeline.fingerprint(stored)
  for outside in (len(train), -len(train) - 1):
    with pytest.raises(IndexError):
      train[np.array([0, outside])]


def test_char_level_models_the_files_characters_as_stored(tmp_path):
  # Line endings are characters too: reading in text mode turned "\r\n" and a lone "\r" into "\n".
  corpus = "één\r\ntwee\rdrie\n" * 50
  path = tmp_path / "crlf.txt"
  path.write_bytes(corpus.encode("utf-8"))
  ds = text.load(str(path), context=16)
  tokenizer = ds.spec.extras["tokenizer"]
  tokens = np.concatenate([ds.train.tokens, ds.test.tokens])
  assert len(tokens) == len(corpus) and tokenizer.decode(tokens) == corpus
  assert "\r" in tokenizer.decode(np.arange(tokenizer.vocab_size))


def test_the_split_follows_data_test_fraction(tmp_path):
  from gm_jax.data import load_dataset
  from gm_jax.tasks.language_model import default_config
  from tests.conftest import load_config

  path = tmp_path / "corpus.txt"
  path.write_text("".join(chr(97 + i % 26) for i in range(1000)))
  config = default_config().data
  config.update(name="text", path=str(path), context=16, test_fraction=0.25)
  ds = load_dataset(config)
  assert len(ds.train.tokens) == 750 and len(ds.test.tokens) == 250
  config = load_config("markov_lm", "tiny").data
  config.test_fraction = 0.5
  ds = load_dataset(config)
  assert len(ds.train.tokens) == len(ds.test.tokens) == config.num_tokens // 2
  with pytest.raises(ValueError, match="data.test_fraction must lie strictly between 0 and 1, got 1.0"):
    text.split_windows(np.arange(100), 4, test_fraction=1.0)
  config.update(name="digits")  # its split is its own
  with pytest.raises(ValueError, match=r"^data.test_fraction is set, but data.name='digits' does not"):
    load_dataset(config)


@pytest.mark.parametrize("num_tokens,context,stride", [
    (1000, 16, 0), (1001, 16, 0), (1097, 16, 0), (523, 7, 0), (400, 29, 0),
    (1000, 11, 0),  # 99 targets fill 9 windows
    (1097, 16, 1), (1097, 16, 5), (523, 7, 7), (400, 29, 28)])
def test_test_windows_score_every_validation_token_once(num_tokens, context, stride):
  """Every token of the test split after the first is a scored target of exactly one window, also the
  up to context - 1 tokens after the last full stride (a final window ends at the last token and masks the
  targets its predecessor already scored); at a stride S, every target after the first window's sees at
  least context - S tokens before it in its window."""
  tokens = np.arange(num_tokens, dtype=np.int32) * 7 % 23  # any stream; positions are checked through it
  _, test = text.split_windows(tokens, context)
  if stride:
    test = text.restrided(test, stride)
  windows = test[np.arange(len(test))]
  targets_mask = windows.get("target_mask", np.ones((len(test), context), np.float32))
  assert windows["x"].shape == (len(test), context + 1) and targets_mask.shape == (len(test), context)
  positions = test.starts[:, None] + 1 + np.arange(context)  # the test-split position of each target
  scored = positions[targets_mask > 0]
  np.testing.assert_array_equal(np.sort(scored), np.arange(1, len(test.tokens)))
  np.testing.assert_array_equal(windows["x"][:, 1:][targets_mask > 0], test.tokens[scored])
  seen = np.broadcast_to(1 + np.arange(context), targets_mask.shape)[targets_mask > 0]  # tokens before each
  assert np.all((seen >= context - (stride or context) + 1) | (scored <= context))


@pytest.mark.parametrize("context,test_fraction", [(64, 0.1), (100, 0.5), (89, 0.5), (30, 0.9)])
def test_a_corpus_too_short_for_its_context_names_the_least_length_that_fits(tmp_path, context,
                                                                               test_fraction):
  path = tmp_path / "short.txt"
  path.write_text("ab" * 90)
  with pytest.raises(ValueError, match=rf"^{path}: a corpus of 180 tokens is too short: with "
                                       rf"data.context={context} and data.test_fraction={test_fraction} "
                                       r"both splits need more than \d+ tokens, so at least (\d+)") as info:
    text.load(str(path), context=context, test_fraction=test_fraction)
  needed = int(str(info.value).split("so at least ")[1].split(" ")[0])
  text.split_windows(np.arange(needed), context, test_fraction)  # enough
  with pytest.raises(ValueError, match="too short"):
    text.split_windows(np.arange(needed - 1), context, test_fraction)  # the least


def test_a_markov_corpus_too_short_names_its_token_count():
  from gm_jax.data import markov

  advice = "at least 171 in all; raise data.num_tokens or a smaller data.context"
  with pytest.raises(ValueError, match=advice):
    markov.load(vocab_size=4, num_tokens=30, context=16, concentration=1.0, seed=0)


def test_missing_corpus_file_is_one_clear_line(tmp_path):
  with pytest.raises(FileNotFoundError, match="set data.path"):
    text.load(str(tmp_path / "nope.txt"))


def test_a_stride_beyond_the_context_or_on_other_data_is_refused():
  from gm_jax.data import load_dataset
  from tests.conftest import load_config

  with pytest.raises(ValueError, match=r"^data.eval_stride=17 must be an integer in \[0, data.context=16\]"):
    text.test_windows(np.arange(100), 16, 17)
  config = load_config("digits_vae", "tiny").data
  config.eval_stride = 2
  with pytest.raises(ValueError, match=r"^data.eval_stride is set, but data.name='digits' does not read it"):
    load_dataset(config)
