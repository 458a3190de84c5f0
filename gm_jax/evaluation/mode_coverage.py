"""Mode-coverage metrics for GANs on Gaussian-mixture toy data (as used by VEEGAN and PacGAN).

Each generated sample is assigned to its nearest mode in std-normalized distance; it is high quality
if that distance is below `threshold` (3 standard deviations). Then
  modes_captured           modes with at least one high-quality sample
  high_quality_fraction    high-quality samples / all samples
  reverse_kl               KL(h || uniform) of the histogram h of high-quality samples over the modes
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def high_quality_assignment(samples_N2: jax.Array, means_K2: jax.Array, std: float,
                            threshold: float = 3.0) -> jax.Array:
  """One-hot (N, K): sample n is high quality and closest to mode k."""
  dist_NK = jnp.sqrt(jnp.sum((samples_N2[:, None, :] - means_K2[None]) ** 2, axis=-1)) / std
  nearest_N = jnp.argmin(dist_NK, axis=-1)
  good_N = jnp.min(dist_NK, axis=-1) < threshold
  return jax.nn.one_hot(nearest_N, means_K2.shape[0]) * good_N[:, None]


def summarize_histogram(high_quality_fraction_K: np.ndarray) -> dict[str, float]:
  """The three numbers from the fraction of all samples that are high quality at each mode."""
  h = np.asarray(high_quality_fraction_K, np.float64)
  total = float(h.sum())
  k = len(h)
  if total == 0:
    return {"modes_captured": 0.0, "high_quality_fraction": 0.0, "reverse_kl": float("inf")}
  p = h / total
  nonzero = p > 0
  reverse_kl = float(np.sum(p[nonzero] * np.log(p[nonzero] * k)))
  return {"modes_captured": float(np.count_nonzero(h)), "high_quality_fraction": total,
          "reverse_kl": reverse_kl}


def mode_coverage(samples_N2, means_K2, std: float, threshold: float = 3.0) -> dict[str, float]:
  assignment = high_quality_assignment(jnp.asarray(samples_N2), jnp.asarray(means_K2), std, threshold)
  return summarize_histogram(np.asarray(jnp.mean(assignment, axis=0)))
