"""The Markov-chain corpus: its stationary distribution, and chains with no single entropy rate."""

import numpy as np
import pytest

from gm_jax.data import markov


def test_the_stationary_distribution_of_a_chain_with_nearly_absent_states_is_a_probability_vector():
  # Dirichlet(0.03) rows leave two states almost no mass; rounding put one of them at -9e-24, which the
  # stream's first draw refused.
  chain = markov.MarkovChain.random(4, 0.03, seed=30)
  pi = chain.stationary
  assert np.all(pi >= 0) and pi.sum() == pytest.approx(1.0, abs=1e-15)
  np.testing.assert_allclose(pi @ chain.transition, pi, rtol=0, atol=1e-15)
  markov.load(vocab_size=4, num_tokens=1000, context=8, concentration=0.03, seed=30)


@pytest.mark.parametrize("transition,closed", [
    (np.eye(2), 2),
    ([[0.5, 0.5], [0.0, 1.0]], 1),  # state 0 is transient
    ([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], 2),
    ([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], 1),
    ([[0.1, 0.9], [0.6, 0.4]], 1)])
def test_closed_classes_are_counted(transition, closed):
  assert markov.MarkovChain(np.asarray(transition)).num_closed_classes == closed


def test_a_chain_split_into_closed_classes_is_refused_in_one_line():
  # Dirichlet(0.001) rows of 2 states: both rows put all their mass on their own state.
  with pytest.raises(ValueError, match=r"^data.concentration=0.001 drew transition probabilities that round "
                                       r"to 0, so the chain of data.seed=16 splits into 2 closed classes and "
                                       r"its entropy rate is not one number; raise data.concentration$"):
    markov.load(vocab_size=2, num_tokens=1000, context=8, concentration=0.001, seed=16)
