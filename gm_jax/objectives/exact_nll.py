"""Exact negative log-likelihood: loss = E_x[-log p(x)] for models whose log-density is tractable.

Used by density models such as the Gaussian mixture; normalizing flows add their change-of-variables
terms inside their log_prob.
"""

from __future__ import annotations

from typing import Callable

import jax

from gm_jax.objectives.sums import masked_mean

LogProbFn = Callable[[dict, jax.Array], jax.Array]  # (params of the network, x_B...) -> log p(x)_B


def make_loss(log_prob: LogProbFn, network: str = "model"):
  """loss_fn(params, model_state, batch, key) = mean over real examples of -log p(x)."""

  def loss_fn(params, model_state, batch, key):
    del key
    nll_B = -log_prob(params[network], batch["x"])
    total, count = masked_mean(nll_B, batch["mask"])
    return total / count, ({"nll_nats": (total, count)}, {})

  return loss_fn


def make_eval(log_prob: LogProbFn, network: str = "model"):
  """eval_fn(...) -> {'nll_nats': (sum of -log p(x), number of examples)}."""

  def eval_fn(params, model_state, batch, key):
    del model_state, key
    return {"nll_nats": masked_mean(-log_prob(params[network], batch["x"]), batch["mask"])}

  return eval_fn
