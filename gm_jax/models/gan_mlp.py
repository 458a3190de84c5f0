"""MLP generator and discriminator for 2-D toy data."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn


class MLPGenerator(nn.Module):
  """z -> x through ReLU layers; a linear output."""

  hidden: Sequence[int]
  out_dim: int

  @nn.compact
  def __call__(self, z, train: bool = True):
    h = z
    for f in self.hidden:
      h = nn.relu(nn.Dense(f)(h))
    return nn.Dense(self.out_dim)(h)


class MLPDiscriminator(nn.Module):
  """x -> one logit (no sigmoid: the losses take logits; a WGAN critic's score is the same number)."""

  hidden: Sequence[int]

  @nn.compact
  def __call__(self, x, train: bool = True):
    h = x.reshape(x.shape[0], -1)
    for f in self.hidden:
      h = nn.leaky_relu(nn.Dense(f)(h), 0.2)
    return nn.Dense(1)(h)[:, 0]
