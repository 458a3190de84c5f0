"""MADE (Germain et al. 2015) and the autoregressive flows built on it: MAF (Papamakarios et al. 2017)
and IAF (Kingma et al. 2016), with affine or rational-quadratic spline transforms.

MADE: a dense network whose weight matrices are multiplied by 0/1 masks built from degrees. Input i
has degree d(i) = its position in the order (1..D); hidden unit k a degree m(k) in 1..D-1; a hidden
unit sees input i iff m(k) >= d(i), a hidden unit of the next layer sees k iff m(k') >= m(k), and the
outputs of input i see k iff d(i) > m(k). So the outputs for input i depend only on inputs earlier in
the order: the Jacobian of outputs with respect to inputs is strictly triangular in that order.

Both flows transform each scalar by a monotone tau(u; theta) whose parameters theta_i come from MADE:
  MAF  forward (data -> latent):  z_i = tau(x_i; theta_i(x_<i))       one MADE pass (density)
       inverse (latent -> data):  x_i = tau^-1(z_i; theta_i(x_<i))    D passes, one per dimension (sampling)
  IAF  inverse (latent -> data):  x_i = tau(z_i; theta_i(z_<i))       one MADE pass (sampling)
       forward (data -> latent):  z_i = tau^-1(x_i; theta_i(z_<i))    D passes (density)
In both log |det dz/dx| = sum_i log |dtau/du| with the sign of the direction, and the Jacobian of the
forward map is lower triangular in the order. tau is affine, tau(u) = u exp(s) + t with s = a tanh(raw)
(a learned per dimension, as in gm_jax.models.bijectors.Coupling), or a RQ spline (gm_jax.models.splines).
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gm_jax.models import precision, splines


def made_degrees(order: np.ndarray, hidden: Sequence[int]) -> list[np.ndarray]:
  """Degrees of the input layer (the position of each input in `order`, 1-based) and of every hidden
  layer (1..D-1 cycled, so every degree is used when the layer has >= D - 1 units)."""
  d = len(order)
  inputs = np.empty(d, np.int64)
  inputs[np.asarray(order)] = np.arange(1, d + 1)
  degrees = [inputs]
  for h in hidden:
    degrees.append(np.arange(h) % max(d - 1, 1) + 1)
  return degrees


def made_masks(order: np.ndarray, hidden: Sequence[int], outputs_per_dim: int) -> list[np.ndarray]:
  """(in, out) 0/1 masks of every MADE layer; the last maps to D * outputs_per_dim units laid out
  (D, outputs_per_dim), whose block i has degree d(i) and sees hidden units of degree < d(i)."""
  degrees = made_degrees(order, hidden)
  masks = [(degrees[l + 1][None, :] >= degrees[l][:, None]).astype(np.float32) for l in range(len(hidden))]
  out_degrees = np.repeat(degrees[0], outputs_per_dim)
  masks.append((out_degrees[None, :] > degrees[-1][:, None]).astype(np.float32))
  return masks


class MADE(nn.Module):
  """(B, D) [, cond (B, C)] -> (B, D, outputs_per_dim), autoregressive in `order` (default 0..D-1).

  ReLU hidden layers; `cond` (e.g. IAF's context from the encoder) enters the first hidden layer
  unmasked. The output layer starts at zero, so a flow built on it starts as the identity.
  """

  hidden: Sequence[int]
  outputs_per_dim: int
  order: tuple[int, ...] | None = None
  dtype: Any = jnp.float32  # compute dtype of the matmuls (gm_jax.models.precision); outputs are float32

  @nn.compact
  def __call__(self, x_BD, cond=None):
    d = x_BD.shape[-1]
    order = np.arange(d) if self.order is None else np.asarray(self.order)
    masks = made_masks(order, self.hidden, self.outputs_per_dim)
    h = x_BD
    for l, mask in enumerate(masks):
      last = l == len(masks) - 1
      init = nn.initializers.zeros if last else nn.initializers.lecun_normal()
      kernel = self.param(f"kernel_{l}", init, mask.shape, jnp.float32)
      bias = self.param(f"bias_{l}", nn.initializers.zeros, (mask.shape[1],), jnp.float32)
      h_next = precision.matmul(h, kernel * jnp.asarray(mask), self.dtype) + bias
      if l == 0 and cond is not None:
        context = precision.Dense(mask.shape[1], use_bias=False, dtype=self.dtype, name="cond")
        h_next = h_next + context(cond.reshape(cond.shape[0], -1))
      h = h_next if last else nn.relu(h_next)
    return h.reshape(h.shape[0], d, self.outputs_per_dim)


def _affine(u, params, scale, inverse: bool):
  """tau(u) = u exp(s) + t with s = scale * tanh(raw); returns (tau(u) or tau^-1(u), log |det|)."""
  t, s = params[..., 0], scale * jnp.tanh(params[..., 1])
  if inverse:
    return (u - t) * jnp.exp(-s), -s
  return u * jnp.exp(s) + t, s


class MaskedAutoregressive(nn.Module):
  """One MAF or IAF layer in the bijector protocol (layer(x, inverse, cond) -> (y, log_det_B)).

  kind: maf | iaf; transform: affine | spline (num_bins, bound). Any input shape; it is flattened to
  (B, D) in row-major order and `order` (a permutation of 0..D-1, default reversed when `reverse`) is
  the autoregressive order over the flattened entries.
  """

  hidden: Sequence[int]
  kind: str = "maf"
  transform: str = "affine"
  reverse: bool = False
  num_bins: int = 8
  bound: float = 3.0
  scale_init: float = 1.0  # affine: the initial per-dimension bound a on the log-scale
  dtype: Any = jnp.float32  # of MADE's matmuls; the transforms and log-determinants stay float32

  def _order(self, d: int) -> np.ndarray:
    return np.arange(d)[::-1].copy() if self.reverse else np.arange(d)

  @nn.compact
  def __call__(self, x, inverse: bool = False, cond=None):
    if self.kind not in ("maf", "iaf"):
      raise ValueError(f"unknown autoregressive flow {self.kind!r}; use maf or iaf")
    if self.transform == "affine":
      outputs = 2
    elif self.transform == "spline":
      outputs = splines.num_spline_params(self.num_bins)
    else:
      raise ValueError(f"unknown autoregressive transform {self.transform!r}; use affine or spline")
    shape = x.shape
    x_BD = x.reshape(shape[0], -1)
    d = x_BD.shape[-1]
    made = MADE(tuple(self.hidden), outputs, tuple(int(i) for i in self._order(d)), self.dtype)
    scale = (self.param("scale", nn.initializers.constant(self.scale_init), (d,))
             if self.transform == "affine" else None)

    def tau(u, params, inv):
      if self.transform == "affine":
        return _affine(u, params, scale, inv)
      return splines.rational_quadratic_spline(u, params, self.bound, inv)

    def one_pass(u_BD):  # v = tau(u; theta(u)): MAF's density pass, IAF's sampling pass
      v, log_det = tau(u_BD, made(u_BD, cond), False)
      return v, jnp.sum(log_det, axis=-1)

    def iterated(v_BD):
      """Solves tau(u; theta(u)) = v: pass n fixes the n-th entry in the order (D passes)."""
      u, _ = tau(v_BD, made(jnp.zeros_like(v_BD), cond), True)  # the first pass creates the parameters
      # Later passes apply MADE as a pure function of its variables, so they can run in a lax loop.
      variables, unbound = made.variables, made.clone(parent=None)
      step = lambda _, u: tau(v_BD, unbound.apply(variables, u, cond), True)[0]
      u = jax.lax.fori_loop(1, d - 1, step, u)
      # Pass D: theta_i needs only u_<i, exact after D - 1 passes, so this pass's log-det is exact too.
      u, log_det = tau(v_BD, unbound.apply(variables, u, cond), True)
      return u, jnp.sum(log_det, axis=-1)

    density_direction = not inverse
    if (self.kind == "maf") == density_direction:
      y, log_det = one_pass(x_BD)
    else:
      y, log_det = iterated(x_BD)
    return y.reshape(shape), log_det
