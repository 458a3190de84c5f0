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


@pytest.mark.parametrize("num_tokens,context", [(1000, 16), (1001, 16), (1097, 16), (523, 7), (400, 29),
                                                (1000, 11)])  # the last: 99 targets fill 9 windows
def test_test_windows_score_every_validation_token_once(num_tokens, context):
  """Every token of the test split after the first is a scored target of exactly one window, also the
  up to context - 1 tokens after the last full stride (a final window ends at the last token and masks the
  targets its predecessor already scored)."""
  tokens = np.arange(num_tokens, dtype=np.int32) * 7 % 23  # any stream; positions are checked through it
  _, test = text.split_windows(tokens, context)
  windows = test[np.arange(len(test))]
  targets_mask = windows.get("target_mask", np.ones((len(test), context), np.float32))
  assert windows["x"].shape == (len(test), context + 1) and targets_mask.shape == (len(test), context)
  positions = test.starts[:, None] + 1 + np.arange(context)  # the test-split position of each target
  scored = positions[targets_mask > 0]
  np.testing.assert_array_equal(np.sort(scored), np.arange(1, len(test.tokens)))
  np.testing.assert_array_equal(windows["x"][:, 1:][targets_mask > 0], test.tokens[scored])


def test_missing_corpus_file_is_one_clear_line(tmp_path):
  with pytest.raises(FileNotFoundError, match="set data.path"):
    text.load(str(tmp_path / "nope.txt"))
