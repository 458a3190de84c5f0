"""MLP generator and discriminator for 2-D toy data."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn

from gm_jax.models import precision


class MLPGenerator(nn.Module):
  """z -> x through ReLU layers; a linear output."""

  hidden: Sequence[int]
  out_dim: int
  compute_dtype: str = "float32"  # of the matmuls (gm_jax.models.precision)

  @nn.compact
  def __call__(self, z, train: bool = True):
    dtype = precision.compute_dtype(self.compute_dtype)
    h = z
    for f in self.hidden:
      h = nn.relu(precision.Dense(f, dtype=dtype)(h))
    return precision.Dense(self.out_dim, dtype=dtype)(h)


class MLPDiscriminator(nn.Module):
  """x -> one logit (no sigmoid: the losses take logits; a WGAN critic's score is the same number)."""

  hidden: Sequence[int]
  compute_dtype: str = "float32"

  @nn.compact
  def __call__(self, x, train: bool = True):
    dtype = precision.compute_dtype(self.compute_dtype)
    h = x.reshape(x.shape[0], -1)
    for f in self.hidden:
      h = nn.leaky_relu(precision.Dense(f, dtype=dtype)(h), 0.2)
    return precision.Dense(1, dtype=dtype)(h)[:, 0]
