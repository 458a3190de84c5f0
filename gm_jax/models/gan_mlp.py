"""MLP generator and discriminator for 2-D toy data; class-conditional with num_classes > 0 (the label's
one-hot vector appended to z, and the projection discriminator's class term on the last hidden layer)."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn

from gm_jax.models import labels, precision


class MLPGenerator(nn.Module):
  """z -> x through ReLU layers; a linear output."""

  hidden: Sequence[int]
  out_dim: int
  compute_dtype: str = "float32"  # of the matmuls (gm_jax.models.precision)
  num_classes: int = 0

  @nn.compact
  def __call__(self, z, label_B=None, train: bool = True):
    dtype = precision.compute_dtype(self.compute_dtype)
    h = labels.append_one_hot(z, label_B, self.num_classes)
    for f in self.hidden:
      h = nn.relu(precision.Dense(f, dtype=dtype)(h))
    return precision.Dense(self.out_dim, dtype=dtype)(h)


class MLPDiscriminator(nn.Module):
  """x -> one logit (no sigmoid: the losses take logits; a WGAN critic's score is the same number)."""

  hidden: Sequence[int]
  compute_dtype: str = "float32"
  num_classes: int = 0

  @nn.compact
  def __call__(self, x, label_B=None, train: bool = True):
    dtype = precision.compute_dtype(self.compute_dtype)
    h = x.reshape(x.shape[0], -1)
    for f in self.hidden:
      h = nn.leaky_relu(precision.Dense(f, dtype=dtype)(h), 0.2)
    return precision.Dense(1, dtype=dtype)(h)[:, 0] + labels.projection(h, label_B, self.num_classes)
