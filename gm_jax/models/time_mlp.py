"""An MLP denoiser for low-dimensional data: (x_t, t[, label]) -> a prediction of x's shape."""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn

from gm_jax.models import labels, precision
from gm_jax.models.time_embedding import sinusoidal_embedding


@dataclasses.dataclass(frozen=True)
class TimeMLPConfig:
  hidden: tuple[int, ...] = (256, 256, 256)
  time_dim: int = 64
  compute_dtype: str = "float32"  # of the matmuls (gm_jax.models.precision)
  num_classes: int = 0  # > 0: conditioned on a label in [0, num_classes], num_classes being "no label"


class TimeMLP(nn.Module):
  """SiLU layers; the time embedding (plus the label's) is projected and added to every hidden layer;
  zero-initialized output (the initial prediction is 0)."""

  config: TimeMLPConfig

  @nn.compact
  def __call__(self, x_BD, t_B, train: bool = False, label_B=None):
    del train
    cfg = self.config
    dense = functools.partial(precision.Dense, dtype=precision.compute_dtype(cfg.compute_dtype))
    temb = nn.silu(dense(cfg.time_dim)(sinusoidal_embedding(t_B, cfg.time_dim))
                   + labels.embedding(cfg.num_classes, cfg.time_dim, label_B))
    h = x_BD
    for width in cfg.hidden:
      h = nn.silu(dense(width)(h) + dense(width)(temb))
    return dense(x_BD.shape[-1], kernel_init=nn.initializers.zeros)(h)
