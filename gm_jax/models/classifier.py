"""A small convolutional image classifier: the digits feature space for sample-quality metrics.

Its penultimate layer (after the last ReLU) is the feature space in which Fréchet distance, KID and
precision/recall are computed ("FD-digits"); its softmax gives the class of a sample.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from gm_jax.models import precision


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
  num_classes: int
  num_levels: int  # integer input levels 0..num_levels-1, scaled to [0, 1]
  channels: tuple[int, ...] = (32, 64, 64)  # 3x3 convolutions; the second halves the resolution
  features: int = 128  # width of the penultimate layer (the feature space)
  dropout: float = 0.0
  compute_dtype: str = "float32"  # of convolutions and matmuls (gm_jax.models.precision)


class ConvClassifier(nn.Module):
  """Integer-level images (N, H, W, C) -> class logits (N, num_classes); `features` -> (N, features)."""

  config: ClassifierConfig

  def setup(self):
    c = self.config
    dtype = precision.compute_dtype(c.compute_dtype)
    self.convs = [precision.Conv(ch, (3, 3), strides=(2, 2) if i == 1 else (1, 1), dtype=dtype,
                                 name=f"conv{i}") for i, ch in enumerate(c.channels)]
    self.hidden = precision.Dense(c.features, dtype=dtype, name="hidden")
    self.drop = nn.Dropout(c.dropout)
    self.head = precision.Dense(c.num_classes, dtype=dtype, name="head")

  def features(self, images_NHWC: jax.Array) -> jax.Array:
    h = images_NHWC.astype(jnp.float32) / (self.config.num_levels - 1)
    for conv in self.convs:
      h = nn.relu(conv(h))
    return nn.relu(self.hidden(h.reshape(h.shape[0], -1)))

  def classify(self, features_NF: jax.Array, train: bool = False) -> jax.Array:
    """Class logits from the penultimate features."""
    return self.head(self.drop(features_NF, deterministic=not train))

  def __call__(self, images_NHWC: jax.Array, train: bool = False) -> jax.Array:
    return self.classify(self.features(images_NHWC), train)
