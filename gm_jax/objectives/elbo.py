"""The evidence lower bound and the importance-weighted bound (seeds 000, 001, 003).

With samples z ~ q(z | x) and log w = log p(x, z) - log q(z | x):
  ELBO    = E_q[log p(x | z_1)] - KL(q(z | x) || p(z))                    <= log p(x)
  IWAE_K  = E[log (1/K) sum_k w_k]                                        ELBO = IWAE_1 <= IWAE_K <= log p(x)
For a hierarchy the KL is the sum over layers of E_q[log q(z_l | z_{l-1}) - log p(z_l | z_{l+1})]; the top
layer's KL to N(0, I) is analytic when `kl='analytic'`, the others are single-sample Monte Carlo.
`beta` weights the KL in the training loss (beta-VAE); reported ELBOs always use beta = 1.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

# log_weights(x, keys_B, K) -> dict of (K, B) terms (see gm_jax.models.vae.HierarchicalVAE.log_weights).
LogWeightsFn = Callable[[jax.Array, jax.Array, int], dict[str, jax.Array]]


def num_layers(terms: dict[str, jax.Array]) -> int:
  return sum(1 for k in terms if k.startswith("log_qz"))


def log_importance_weights(terms: dict[str, jax.Array]) -> jax.Array:
  """log w = log p(x | z_1) + sum_l [log p(z_l | z_{l+1}) - log q(z_l | z_{l-1})], shape (K, B)."""
  log_w = terms["log_px"]
  for l in range(1, num_layers(terms) + 1):
    log_w = log_w + terms[f"log_pz{l}"] - terms[f"log_qz{l}"]
  return log_w


def elbo_terms(terms: dict[str, jax.Array], kl: str = "analytic") -> dict[str, jax.Array]:
  """Per-sample reconstruction, KL per layer, and ELBO, each (K, B)."""
  if kl not in ("analytic", "mc"):
    raise ValueError(f"objective.kl must be 'analytic' or 'mc', got {kl!r}")
  layers = num_layers(terms)
  out = {"recon": terms["log_px"]}
  total_kl = 0.0
  for l in range(1, layers + 1):
    if l == layers and kl == "analytic":
      kl_l = terms["kl_top_analytic"]
    else:
      kl_l = terms[f"log_qz{l}"] - terms[f"log_pz{l}"]
    out[f"kl{l}"] = kl_l
    total_kl = total_kl + kl_l
  out["kl"] = total_kl
  out["elbo"] = terms["log_px"] - total_kl
  return out


def iwae_bound(log_w_KB: jax.Array) -> jax.Array:
  """log (1/K) sum_k w_k per example, shape (B,)."""
  return logsumexp(log_w_KB, axis=0) - math.log(log_w_KB.shape[0])


def iwae_estimate(log_weights: LogWeightsFn, x: jax.Array, keys_B: jax.Array, num_samples: int,
                  chunk: int) -> jax.Array:
  """log p(x) estimated by IWAE with `num_samples` samples, drawn `chunk` at a time (bounded memory).

  Sample j of example i is drawn from key fold_in(key_i, j), so the estimate depends only on each
  example's key and not on `chunk`, a memory setting.
  """
  if num_samples % chunk:
    raise ValueError(f"eval.iwae_samples ({num_samples}) must be a multiple of eval.iwae_chunk ({chunk})")
  fold = jax.vmap(jax.random.fold_in, in_axes=(0, None))

  def body(running_B, c):
    keys_CB = jax.vmap(lambda j: fold(keys_B, j))(c * chunk + jnp.arange(chunk))
    log_w = jax.vmap(lambda keys: log_importance_weights(log_weights(x, keys, 1))[0])(keys_CB)  # (C, B)
    return jnp.logaddexp(running_B, logsumexp(log_w, axis=0)), None

  start = jnp.full((x.shape[0],), -jnp.inf)
  total_B, _ = jax.lax.scan(body, start, jnp.arange(num_samples // chunk))
  return total_B - math.log(num_samples)
