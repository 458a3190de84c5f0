"""How the networks read a class label: a one-hot input, a learned embedding with a "no label" row, or a
projection (an inner product of a learned class vector with the network's features).

Every helper takes num_classes = 0 for an unconditional network, which then must be given no labels, so a
conditional model that loses its labels, or an unconditional one handed some, fails instead of ignoring them.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def check(label_B, num_classes: int) -> bool:
  """Whether the network is conditional; raises if labels and num_classes disagree."""
  if num_classes == 0:
    if label_B is not None:
      raise ValueError("labels were given to an unconditional network; set model.num_classes")
    return False
  if label_B is None:
    raise ValueError(f"a network conditioned on {num_classes} classes needs labels")
  return True


def one_hot(label_B, num_classes: int, dtype=jnp.float32):
  """(B,) labels in [0, num_classes) -> (B, num_classes) one-hot vectors; None if unconditional."""
  return jax.nn.one_hot(label_B, num_classes, dtype=dtype) if check(label_B, num_classes) else None


def append_one_hot(h, label_B, num_classes: int):
  """h (..., B, F) with the labels' one-hot vectors appended to its features (h itself if unconditional)."""
  if not check(label_B, num_classes):
    return h
  code = jax.nn.one_hot(label_B, num_classes, dtype=h.dtype)
  return jnp.concatenate([h, jnp.broadcast_to(code, (*h.shape[:-1], num_classes))], axis=-1)


def embedding(num_classes: int, dim: int, label_B):
  """(B,) labels in [0, num_classes] -> (B, dim) learned embeddings, num_classes standing for "no label"
  (the unconditional model of classifier-free guidance); 0 when the network is unconditional.
  Call inside a compact module: the table is that module's parameter."""
  if not check(label_B, num_classes):
    return 0.0
  return nn.Embed(num_classes + 1, dim, name="label_embedding")(jnp.asarray(label_B, jnp.int32))


def projection(features_BF, label_B, num_classes: int):
  """<e_label, features> per example with a learned class vector e (Miyato & Koyama 2018, the projection
  discriminator's class term); 0 when unconditional. Call inside a compact module."""
  if not check(label_B, num_classes):
    return 0.0
  vectors = nn.Embed(num_classes, features_BF.shape[-1], embedding_init=nn.initializers.normal(0.02),
                     name="class_projection")(jnp.asarray(label_B, jnp.int32))
  return jnp.sum(vectors * features_BF.astype(jnp.float32), axis=-1)
