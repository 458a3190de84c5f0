"""Synthetic token streams from a first-order Markov chain with a known entropy rate.

The transition matrix has rows drawn from a symmetric Dirichlet(concentration) (smaller = more
predictable), seeded; the stream starts from the stationary distribution pi. Entropy rate:
  H = -sum_i pi_i sum_j P_ij log P_ij   nats per token,
the lowest cross-entropy any model of the stream can reach.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse.csgraph

from gm_jax.data import split as split_lib
from gm_jax.data.dataset import DataSpec, Dataset
from gm_jax.data.text import split_windows


@dataclasses.dataclass(frozen=True)
class MarkovChain:
  transition: np.ndarray  # (V, V), rows sum to 1

  @classmethod
  def random(cls, vocab_size: int, concentration: float, seed: int) -> "MarkovChain":
    rng = np.random.default_rng(seed)
    return cls(rng.dirichlet(np.full(vocab_size, concentration), size=vocab_size))

  @property
  def stationary(self) -> np.ndarray:
    """The stationary distribution pi = pi P. Rounding leaves states of almost no mass at values like -1e-23,
    which are 0: clipped, as a probability vector must be."""
    values, vectors = np.linalg.eig(self.transition.T)
    pi = np.real(vectors[:, np.argmin(np.abs(values - 1.0))])
    pi = np.maximum(pi / pi.sum(), 0.0)
    return pi / pi.sum()

  @property
  def num_closed_classes(self) -> int:
    """The chain's closed communicating classes (1 for a chain with a single stationary distribution)."""
    _, class_of = scipy.sparse.csgraph.connected_components(self.transition > 0, connection="strong")
    leaves = class_of[:, None] != class_of[None, :]  # transitions from a state to another class
    return len(set(class_of) - set(class_of[np.any((self.transition > 0) & leaves, axis=1)]))

  @property
  def entropy_rate(self) -> float:
    p = self.transition
    row_entropy = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=1)
    return float(self.stationary @ row_entropy)

  def sample(self, num_tokens: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(self.transition, axis=1)
    tokens = np.empty(num_tokens, np.int32)
    tokens[0] = rng.choice(len(self.transition), p=self.stationary)
    u = rng.random(num_tokens)
    for t in range(1, num_tokens):
      tokens[t] = min(np.searchsorted(cumulative[tokens[t - 1]], u[t]), len(self.transition) - 1)
    return tokens

  def nll(self, tokens: np.ndarray) -> float:
    """The chain's own mean -log P(x_t | x_{t-1}) over a stream (the floor on that very stream)."""
    return float(-np.mean(np.log(self.transition[tokens[:-1], tokens[1:]])))


def load(vocab_size: int, num_tokens: int, context: int, concentration: float, seed: int,
         test_fraction: float = split_lib.DEFAULT_TEST_FRACTION) -> Dataset:
  if vocab_size < 1 or num_tokens < 1 or not concentration > 0:
    raise ValueError(f"data.vocab_size={vocab_size} and data.num_tokens={num_tokens} must be >= 1 and "
                     f"data.concentration={concentration} > 0 (the Dirichlet prior of the transition rows)")
  chain = MarkovChain.random(vocab_size, concentration, seed)
  if chain.num_closed_classes > 1:  # a stream stays in the class it starts in: no one entropy rate
    raise ValueError(f"data.concentration={concentration} drew transition probabilities that round to 0, "
                     f"so the chain of data.seed={seed} splits into {chain.num_closed_classes} closed "
                     f"classes and its entropy rate is not one number; raise data.concentration")
  tokens = chain.sample(num_tokens, seed + 1)
  try:
    train, test = split_windows(tokens, context, test_fraction)
  except ValueError as e:  # the text loader's advice, said of the setting that makes a Markov corpus
    raise ValueError(str(e).replace("use a longer text", "raise data.num_tokens")) from None
  spec = DataSpec(kind="tokens", shape=(context + 1,), num_levels=vocab_size,
                  extras={"chain": chain, "tokenizer": IdentityTokenizer()})
  return Dataset("markov", train, test, spec)


class IdentityTokenizer:
  """Tokens are their own text: decode writes them as space-separated ids."""

  def decode(self, ids) -> str:
    return " ".join(str(int(i)) for i in ids)

  def to_bytes(self, ids) -> bytes:
    return self.decode(ids).encode("ascii")
