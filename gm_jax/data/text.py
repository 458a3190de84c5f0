"""Character- and byte-level text corpora for language models, from a file or TFDS tiny_shakespeare.

As in nanoGPT, the first 90% of a file's token stream is the training split and the last 10% validation
(data.test_fraction). A TFDS set keeps its own splits: its validation and test splits are held out, the
others train (tiny_shakespeare's train split is the play's first 90%, so both give the same windows).
A training example is a window of `context + 1` tokens starting anywhere in the training split (inputs
and next-token targets); the test split is cut into consecutive windows that overlap by one token, and
when they do not reach its end a last window ends at its last token, with `target_mask` 0 on the targets
the window before it scored; so one pass scores every validation token after the first exactly once.
With data.eval_stride S the windows lie S tokens apart and score their last S targets, so that each token
sees at least context - S + 1 tokens (S = 1: its whole context; `test_windows`).
Character level needs UTF-8 text; byte level reads the file's raw bytes, so it takes any file.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib

import numpy as np

from gm_jax.data import split as split_lib
from gm_jax.data.dataset import DataSpec, Dataset
from gm_jax.data.pipeline import digest


@dataclasses.dataclass(frozen=True)
class CharTokenizer:
  """Maps each distinct character of the corpus to an id (sorted, as nanoGPT's shakespeare_char)."""

  chars: str

  @classmethod
  def fit(cls, text: str) -> "CharTokenizer":
    return cls("".join(sorted(set(text))))

  @property
  def vocab_size(self) -> int:
    return len(self.chars)

  def encode(self, text: str) -> np.ndarray:
    table = {c: i for i, c in enumerate(self.chars)}
    try:
      return np.fromiter((table[c] for c in text), np.int32, len(text))
    except KeyError as e:
      raise ValueError(f"character {e.args[0]!r} is not in the tokenizer's vocabulary") from None

  def decode(self, ids) -> str:
    return "".join(self.chars[int(i)] for i in ids)

  def to_bytes(self, ids) -> bytes:
    """The characters as the corpus stores them (UTF-8)."""
    return self.decode(ids).encode("utf-8")


@dataclasses.dataclass(frozen=True)
class ByteTokenizer:
  """UTF-8 bytes, vocabulary 256."""

  @property
  def vocab_size(self) -> int:
    return 256

  def encode(self, text: str | bytes) -> np.ndarray:
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    return np.frombuffer(data, np.uint8).astype(np.int32)

  def decode(self, ids) -> str:
    """Printable text: bytes that are not UTF-8 (another encoding, a character cut short) show as U+FFFD."""
    return self.to_bytes(ids).decode("utf-8", errors="replace")

  def to_bytes(self, ids) -> bytes:
    """The bytes themselves, in whatever encoding the corpus has."""
    return bytes(int(i) for i in ids)


@dataclasses.dataclass(frozen=True)
class WindowSource:
  """Windows tokens[s : s + context + 1] for s in starts; `x` is (N, context + 1) int32. With
  `first_scored` (the test split's windows) also `target_mask` (N, context) float32: 1 on the targets
  x[:, 1:] from index first_scored of each window on, which are the ones it scores. The training split's
  starts are a `range` (every position): as an int64 array they took twice a corpus's int32 tokens."""

  tokens: np.ndarray
  starts: np.ndarray | range
  context: int
  first_scored: np.ndarray | None = None
  fingerprinted: bool = False  # a corpus read from a file or TFDS (gm_jax.data.pipeline.fingerprint)

  def __len__(self) -> int:
    return len(self.starts)

  def __getitem__(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    offsets = self._starts_of(indices)[:, None] + np.arange(self.context + 1)
    out = {"x": self.tokens[offsets]}
    if self.first_scored is not None:
      out["target_mask"] = (np.arange(self.context) >= self.first_scored[indices][:, None]).astype(np.float32)
    return out

  def _starts_of(self, indices: np.ndarray) -> np.ndarray:
    if isinstance(self.starts, np.ndarray):
      return self.starts[indices]
    indices, n = np.asarray(indices, np.int64), len(self.starts)
    if indices.size and (indices.min() < -n or indices.max() >= n):  # as an array's indexing would
      raise IndexError(f"window index out of range for {n} windows")
    return self.starts.start + self.starts.step * (indices % n)

  def fingerprint(self) -> str | None:
    # A range hashes as the int64 array it once was, so runs fingerprinted then still resume.
    return digest([self.tokens, self.starts]) if self.fingerprinted else None


def read_corpus(path: str, tfds_name: str | None, data_dir: str | None,
                level: str = "char") -> tuple[str | bytes, str | bytes | None]:
  """(training text, held-out text): a file's whole text and None (data.test_fraction then cuts it); a
  TFDS set's splits other than validation and test, and those two (None when it has neither). Raw bytes
  for level 'byte' (so any file, UTF-8 or not, can be modelled)."""
  if path:
    file = pathlib.Path(path).expanduser()
    if file.is_dir():
      raise ValueError(f"text corpus {str(file)!r} is a directory; set data.path to a text file")
    if not file.is_file():
      raise FileNotFoundError(f"text corpus {str(file)!r} does not exist; set data.path to a text file")
    if level == "byte":
      return file.read_bytes(), None
    try:  # decoded as stored: read_text would turn "\r\n" and "\r" into "\n", a text other than the file's
      return file.read_bytes().decode("utf-8"), None
    except UnicodeDecodeError as e:
      raise ValueError(f"text corpus {str(file)!r} is not UTF-8 text (byte {e.object[e.start]:#04x} at "
                       f"offset {e.start}); set data.level='byte' to model its raw bytes") from None
  if tfds_name:
    from gm_jax.data.tfds_source import prepared_splits

    splits = prepared_splits(tfds_name, data_dir)
    held_out = [s for s in splits if s in ("validation", "test")]
    trained = [s for s in splits if s not in held_out]
    if not trained:
      raise ValueError(f"TFDS set {tfds_name!r} has only the splits {held_out}, none to train on")
    decode = (lambda b: b) if level == "byte" else (lambda b: b.decode("utf-8"))
    return (decode(_tfds_text(tfds_name, trained, data_dir)),
            decode(_tfds_text(tfds_name, held_out, data_dir)) if held_out else None)
  raise ValueError("a text data set needs data.path (a text file) or data.tfds_name")


def _tfds_text(name: str, splits: list[str], data_dir: str | None) -> bytes:
  """The records of `splits` in order, joined by newlines within a split (tiny_shakespeare has one record
  per split; a corpus of documents has many) and back to back across splits."""
  from gm_jax.data.tfds_source import open_split

  parts = []
  for split in splits:
    source = open_split(name, split, data_dir)
    if len(source) and "text" not in source[0]:
      raise ValueError(f"TFDS set {name!r} has no 'text' feature (its records hold {sorted(source[0])}); "
                       f"a text data set needs one")
    parts.append(b"\n".join(_as_bytes(record["text"]) for record in source))
  return b"".join(parts)


def _as_bytes(text) -> bytes:
  return text if isinstance(text, bytes) else str(text).encode("utf-8")


def split_windows(tokens: np.ndarray, context: int, test_fraction: float = split_lib.DEFAULT_TEST_FRACTION):
  """The first 1 - test_fraction of the tokens train (every window), the rest test (each token scored
  once)."""
  if not 0 < test_fraction < 1:
    raise ValueError(f"data.test_fraction must lie strictly between 0 and 1, got {test_fraction}")
  _check_context(context)
  n_train = int(len(tokens) * (1.0 - test_fraction))
  train, test = tokens[:n_train], tokens[n_train:]
  if len(train) <= context + 1 or len(test) <= context + 1:
    fits = lambda n: min(int(n * (1.0 - test_fraction)), n - int(n * (1.0 - test_fraction))) > context + 1
    needed = max(context + 2, math.floor((context + 1) / min(test_fraction, 1.0 - test_fraction)))
    while not fits(needed):
      needed += 1
    raise ValueError(f"a corpus of {len(tokens)} tokens is too short: with data.context={context} and "
                     f"data.test_fraction={test_fraction} both splits need more than {context + 1} tokens, "
                     f"so at least {needed} in all; use a longer text or a smaller data.context")
  return _windows(train, test, context)


def held_out_windows(train: np.ndarray, test: np.ndarray, context: int):
  """split_windows for a corpus whose held-out tokens are given (a TFDS set's validation and test)."""
  _check_context(context)
  for name, tokens in (("training", train), ("held-out", test)):
    if len(tokens) <= context + 1:
      raise ValueError(f"the {name} splits hold {len(tokens)} tokens, which windows of data.context="
                       f"{context} need more than {context + 1} of; use a smaller data.context")
  return _windows(train, test, context)


def _check_context(context: int) -> None:
  if context < 1:
    raise ValueError(f"data.context={context} must be >= 1 (the tokens a window conditions on)")


def _windows(train: np.ndarray, test: np.ndarray, context: int):
  return WindowSource(train, range(len(train) - context), context), test_windows(test, context)


def test_windows(test: np.ndarray, context: int, stride: int = 0) -> WindowSource:
  """Windows that score every test token after the first once. Stride 0 (= context): consecutive windows
  overlapping by one token, as nanoGPT's validation loss, in which a target sees the targets before it in
  its window (context / 2 tokens on average). Stride S < context: windows S tokens apart, each scoring
  its last S targets (the first window all of its own), so that every target after the first window's
  sees at least context - S + 1 tokens: S = 1 gives each token its whole context, at context times the
  cost of stride 0."""
  stride = stride or context
  if isinstance(stride, bool) or not isinstance(stride, int) or not 0 < stride <= context:
    raise ValueError(f"data.eval_stride={stride!r} must be an integer in [0, data.context={context}] (0: "
                     f"consecutive windows)")
  starts = np.arange(0, len(test) - context, stride, dtype=np.int64)
  first_scored = np.full(len(starts), context - stride, np.int64)
  first_scored[0] = 0
  covered = starts[-1] + context  # the last position the strided windows score
  if covered < len(test) - 1:  # the rest (< stride tokens) in a window ending at the last token
    last_start = len(test) - 1 - context
    starts = np.append(starts, last_start)
    first_scored = np.append(first_scored, covered - last_start)
  return WindowSource(test, starts, context, first_scored)


def restrided(test: WindowSource, stride: int) -> WindowSource:
  """A test split's windows at another stride (test_windows), over the same tokens."""
  windows = test_windows(test.tokens, test.context, stride)
  return dataclasses.replace(windows, fingerprinted=test.fingerprinted)


def random_characters(context: int, vocab: int = 65, size: int = 200_000, seed: int = 0) -> Dataset:
  """Uniformly random tokens in windows of `context` + 1: a corpus of a real one's shape (65 characters
  by default, Tiny Shakespeare's), for timing and compiling language models without the corpus."""
  tokens = np.random.default_rng(seed).integers(0, vocab, size=size, dtype=np.int32)
  train, test = split_windows(tokens, context)
  return Dataset("random_chars", train, test, DataSpec("tokens", (context + 1,), num_levels=vocab))


def load(path: str = "", tfds_name: str | None = None, level: str = "char", context: int = 64,
         data_dir: str | None = None, test_fraction: float = split_lib.DEFAULT_TEST_FRACTION) -> Dataset:
  if level not in ("char", "byte"):
    raise ValueError(f"data.level must be 'char' or 'byte', got {level!r}")
  text, held_out = read_corpus(path, tfds_name, data_dir, level)
  if held_out is not None:
    split_lib.check_no_test_fraction(test_fraction, f"TFDS set {tfds_name!r} holds out its validation and "
                                                    f"test splits")
  tokenizer = CharTokenizer.fit(text + held_out if held_out else text) if level == "char" else ByteTokenizer()
  try:
    if held_out is None:
      train, test = split_windows(tokenizer.encode(text), context, test_fraction)
    else:
      train, test = held_out_windows(tokenizer.encode(text), tokenizer.encode(held_out), context)
  except ValueError as e:
    raise ValueError(f"{path or tfds_name}: {e}") from None
  spec = DataSpec(kind="tokens", shape=(context + 1,), num_levels=tokenizer.vocab_size,
                  extras={"tokenizer": tokenizer})
  # Both splits: the processes of a launch compare them (a corpus that differs in its held-out tail too).
  train, test = (dataclasses.replace(split, fingerprinted=True) for split in (train, test))
  return Dataset(pathlib.Path(path).stem if path else tfds_name, train, test, spec)
