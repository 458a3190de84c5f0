import numpy as np
import pytest

from gm_jax.data import text


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


def test_test_windows_score_every_validation_token_once(tmp_path):
  path = tmp_path / "c.txt"
  path.write_text("ab" * 500)
  ds = text.load(str(path), context=16)
  targets = ds.test[np.arange(len(ds.test))]["x"][:, 1:]
  covered = len(ds.test) * 16
  assert covered <= len(ds.test.tokens) - 1 < covered + 16
  assert targets.shape == (len(ds.test), 16)


def test_missing_corpus_file_is_one_clear_line(tmp_path):
  with pytest.raises(FileNotFoundError, match="set data.path"):
    text.load(str(tmp_path / "nope.txt"))
