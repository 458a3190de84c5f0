"""Classifier-free guidance (Ho & Salimans 2021): one network trained as both the class-conditional and the
unconditional model by dropping labels, and sampled with their extrapolation.

The label `num_classes` stands for "no label" (the network's embedding table has num_classes + 1 rows).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def drop_labels(key, labels_B, rate: float, num_classes: int) -> jax.Array:
  """Each label replaced by "no label" (num_classes) independently with probability `rate`."""
  dropped = jax.random.bernoulli(key, rate, labels_B.shape)
  return jnp.where(dropped, num_classes, labels_B)


def guided(net: Callable, num_classes: int, scale: float) -> Callable:
  """net(x_t, t, labels) -> prediction, as the guided (x_t, t, labels) -> (1 + w) net(x_t, t, labels) -
  w net(x_t, t, none), both halves in one network pass. w = 0 is the conditional model; where a label is
  "none" the result is the unconditional model for every w. The prediction kinds convert affinely at a
  given (x_t, t), so guiding the network's own kind guides eps, x0, score and velocity alike."""
  if scale == 0.0:
    return net

  def apply(x_t, t, labels_B):
    both = net(jnp.concatenate([x_t, x_t]), jnp.concatenate([t, t]),
               jnp.concatenate([labels_B, jnp.full_like(labels_B, num_classes)]))
    conditional, unconditional = jnp.split(both, 2)
    return (1.0 + scale) * conditional - scale * unconditional

  return apply
