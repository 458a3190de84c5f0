"""VDM's learned noise schedule gamma(t) = -log SNR(t), monotone increasing in t (Kingma et al. 2021).

'endpoints': gamma(t) = gamma_0 + (gamma_1 - gamma_0) t with learned gamma_0, gamma_1.
'network': the same endpoints, with an interior shape from VDM's monotone network (positive weights:
l1(t) + l3(2 sigmoid(l2(2t - 1)) - 1) / hidden), normalized to run from gamma_0 to gamma_1. As in VDM's
code, l1's slope starts at gamma_1 - gamma_0, so the sigmoid features bend the start by a few per cent
and the schedule starts nearly linear. The continuous-time ELBO depends on the schedule only through
its endpoints, so the interior's gradient is zero in expectation: trained by the ELBO alone (VDM's
variance-minimizing update of it is not implemented), the interior keeps about the shape it starts from.
"""

from __future__ import annotations

import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp


class PositiveDense(nn.Module):
  features: int
  kernel_init: Callable = nn.initializers.normal(1.0)  # of the raw kernel, before the softplus

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    return x @ jax.nn.softplus(kernel) + bias


class LearnedGamma(nn.Module):
  gamma_min: float = -13.3
  gamma_max: float = 5.0
  kind: str = "endpoints"  # endpoints | network
  hidden: int = 1024

  @nn.compact
  def __call__(self, t):
    t_shape = jnp.shape(t)
    t = jnp.asarray(t, jnp.float32).reshape(-1)
    gamma_0 = self.param("gamma_0", nn.initializers.constant(self.gamma_min), ())
    gamma_1 = self.param("gamma_1", nn.initializers.constant(self.gamma_max), ())
    if self.kind == "endpoints":
      unit = t
    elif self.kind == "network":
      span = self.gamma_max - self.gamma_min
      slope = nn.initializers.constant(math.log(math.expm1(span)))  # softplus(raw) = span
      l1, l2, l3 = (PositiveDense(1, slope, name="l1"), PositiveDense(self.hidden, name="l2"),
                    PositiveDense(1, name="l3"))

      def monotone(s):
        s = s[:, None]
        bend = 2.0 * jax.nn.sigmoid(l2(2.0 * s - 1.0)) - 1.0
        return (l1(s) + l3(bend) / self.hidden)[:, 0]

      ends = monotone(jnp.array([0.0, 1.0]))
      unit = (monotone(t) - ends[0]) / (ends[1] - ends[0])
    else:
      raise ValueError(f"unknown learned schedule {self.kind!r}; use 'endpoints' or 'network'")
    return (gamma_0 + (gamma_1 - gamma_0) * unit).reshape(t_shape)
