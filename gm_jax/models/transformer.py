"""A decoder-only Transformer language model with a key/value cache for decoding.

Pre-LayerNorm blocks: x + Attn(LN(x)), then x + MLP(LN(x)) with a GELU MLP; causal self-attention
(gm_jax.models.attention, which recomputes the attention weights in the backward pass); learned or
rotary positions; dropout; the output layer shares the token embedding (tied) unless
`tie_embeddings=False`. Called with `decode=True` the model consumes one token per call for every row
and keeps keys and values in the 'cache' collection (see gm_jax.sampling.autoregressive).
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gm_jax.models import attention, precision

init_normal = nn.initializers.normal(0.02)


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  vocab_size: int
  context: int
  num_layers: int = 4
  num_heads: int = 4
  embed_dim: int = 128
  mlp_ratio: int = 4
  dropout: float = 0.0
  positions: str = "learned"  # learned | rotary
  tie_embeddings: bool = True
  # Look tokens up by a one-hot matmul (in float32 whatever compute_dtype: the same values as a lookup);
  # its backward pass is a matmul, not a scatter-add. Cheaper for small vocabularies (chars, bytes) on
  # every backend; turn off for large vocabularies.
  one_hot_embedding: bool = True
  use_bias: bool = True  # in Dense and LayerNorm layers (GPT-2 has them; nanoGPT's default drops them)
  exact_gelu: bool = False  # erf GELU (PyTorch's nn.GELU, nanoGPT) instead of the tanh approximation (GPT-2)
  # Attention whose backward pass recomputes the weights rather than keeping them (gm_jax.models.attention):
  # less memory for a little more time (the char GPT step: 37.4 against 42.6 MB, 2-6 % slower in float32).
  # Training with dropout keeps the weights anyway (dropout applies to them), so there it changes nothing.
  recompute_attention: bool = True
  compute_dtype: str = "float32"  # of the matmuls (gm_jax.models.precision); all else stays float32

  def __post_init__(self):
    sizes = {"vocab_size": self.vocab_size, "context": self.context, "num_layers": self.num_layers,
             "num_heads": self.num_heads, "embed_dim": self.embed_dim, "mlp_ratio": self.mlp_ratio}
    small = [f"{name}={value}" for name, value in sizes.items() if value < 1]
    if small:
      raise ValueError(f"{', '.join(small)} must be >= 1 (model.*, and data.context)")
    if not 0 <= self.dropout < 1:
      raise ValueError(f"model.dropout={self.dropout} must be in [0, 1) (the probability of dropping)")
    if self.embed_dim % self.num_heads:
      raise ValueError(f"model.embed_dim ({self.embed_dim}) must be divisible by model.num_heads "
                       f"({self.num_heads})")
    if self.positions not in ("learned", "rotary"):
      raise ValueError(f"model.positions must be 'learned' or 'rotary', got {self.positions!r}")
    if self.positions == "rotary" and (self.embed_dim // self.num_heads) % 2:
      # Rotary positions rotate channel pairs (i, i + D / 2) of each head.
      raise ValueError(f"rotary positions need an even head size; model.embed_dim / model.num_heads = "
                       f"{self.embed_dim // self.num_heads}: change either, or set model.positions='learned'")
    precision.compute_dtype(self.compute_dtype)

  @property
  def dtype(self):
    return precision.compute_dtype(self.compute_dtype)


def dense(c: TransformerConfig, features: int, **kwargs) -> nn.Dense:
  """A Dense layer in the config's compute dtype, with the row-major custom-gradient matmul of
  gm_jax.models.precision (faster on XLA:CPU in float32 too; the model needs no forward-mode autodiff)."""
  return precision.Dense(features, dtype=c.dtype, custom_gradient=True, **kwargs)


def einsum(c: TransformerConfig, spec: str, a: jax.Array, b: jax.Array) -> jax.Array:
  """A two-operand einsum like `dense`'s matmul, with a float32 result."""
  return precision.einsum(spec, a, b, c.dtype, custom_gradient=True)


class CausalSelfAttention(nn.Module):
  config: TransformerConfig

  @nn.compact
  def __call__(self, x_BTD, positions_T, train: bool, decode: bool):
    c = self.config
    b, t, d = x_BTD.shape
    head_dim = d // c.num_heads
    qkv = dense(c, 3 * d, use_bias=c.use_bias, kernel_init=init_normal, name="qkv")(x_BTD.reshape(b * t, d))
    qkv = qkv.reshape(b, t, 3, c.num_heads, head_dim)
    if c.recompute_attention and not decode and not (train and c.dropout > 0):
      # Its backward pass keeps only the qkv projection and a log-normalizer per query.
      out = attention.causal_self_attention(qkv, c.positions == "rotary", c.dtype).reshape(b * t, d)
    else:  # also a cache's key positions, and dropout on the attention weights
      out = self._attend_keeping_weights(qkv, positions_T, train, decode)
    # GPT-2's scaled init of the residual projections.
    proj_init = nn.initializers.normal(0.02 / jnp.sqrt(2.0 * c.num_layers))
    return dense(c, d, use_bias=c.use_bias, kernel_init=proj_init, name="proj")(out).reshape(b, t, d)

  def _attend_keeping_weights(self, qkv, positions_T, train: bool, decode: bool):
    """Attention with the automatic backward pass, which keeps the weights."""
    c = self.config
    b, t, _, num_heads, head_dim = qkv.shape
    rotation = None
    if c.positions == "rotary":
      cos, signed_sin = attention.rotary_tables(c.context, head_dim)
      if decode:  # positions come from the cache index
        rotation = jnp.take(cos, positions_T, axis=0), jnp.take(signed_sin, positions_T, axis=0)
      else:
        rotation = cos[:t], signed_sin[:t]
    q, k, v = attention.queries_keys_values(qkv, rotation)
    if decode:
      cached_k = self.variable("cache", "key", jnp.zeros, (b, c.context, num_heads, head_dim), k.dtype)
      cached_v = self.variable("cache", "value", jnp.zeros, (b, c.context, num_heads, head_dim), v.dtype)
      start = positions_T[0]
      cached_k.value = jax.lax.dynamic_update_slice(cached_k.value, k, (0, start, 0, 0))
      cached_v.value = jax.lax.dynamic_update_slice(cached_v.value, v, (0, start, 0, 0))
      k, v = cached_k.value, cached_v.value
      key_positions = jnp.arange(c.context)
    else:
      key_positions = positions_T
    mask_TS = key_positions[None, :] <= positions_T[:, None]
    scores = einsum(c, "bthd,bshd->bhts", q, k)
    scores = jnp.where(mask_TS[None, None], scores, jnp.finfo(scores.dtype).min)
    weights = jax.nn.softmax(scores, axis=-1)
    weights = nn.Dropout(c.dropout)(weights, deterministic=not train)
    return einsum(c, "bhts,bshd->bthd", weights, v).reshape(b * t, num_heads * head_dim)


def layer_norm(c: TransformerConfig, name: str | None = None) -> nn.LayerNorm:
  return nn.LayerNorm(epsilon=1e-5, use_bias=c.use_bias, name=name)  # GPT-2's and PyTorch's epsilon


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def gelu(h: jax.Array, approximate: bool) -> jax.Array:
  """nn.gelu (tanh approximation or exact erf) whose backward pass keeps only its input and computes
  the derivative from it in one elementwise pass. The automatic one keeps the tanh's intermediates
  (2.4 MB more in the char GPT's step), and recomputing the GELU under jax.checkpoint evaluated it twice
  in the backward pass (once for the next layer's kernel gradient, once inside its derivative): the
  bfloat16 step ran 3-8 % slower with it, and held 0.2 MB more."""
  return nn.gelu(h, approximate=approximate)


def _gelu_fwd(h, approximate):
  return gelu(h, approximate), h


def _gelu_bwd(approximate, h, g):
  h = precision.after(h, g)  # computed in the backward pass, not merged with the forward pass's GELU
  if approximate:  # d/dh 0.5 h (1 + tanh(u)), u = sqrt(2/pi) (h + 0.044715 h^3)
    c = np.sqrt(2.0 / np.pi).astype(h.dtype)
    t = jnp.tanh(c * (h + 0.044715 * h ** 3))
    derivative = 0.5 * (1.0 + t) + 0.5 * h * (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * h * h)
  else:  # Phi(h) + h phi(h)
    phi = jnp.exp(-0.5 * h * h) / np.sqrt(2 * np.pi)
    derivative = 0.5 * (1.0 + jax.lax.erf(h / np.sqrt(2.0))) + h * phi
  return (g * derivative,)


gelu.defvjp(_gelu_fwd, _gelu_bwd)


class Block(nn.Module):
  config: TransformerConfig

  @nn.compact
  def __call__(self, x, positions_T, train: bool, decode: bool):
    c = self.config
    h = CausalSelfAttention(c)(layer_norm(c)(x), positions_T, train, decode)
    x = x + nn.Dropout(c.dropout)(h, deterministic=not train)
    b, t, d = x.shape
    # The MLP on (B * T, D) rows: XLA:CPU runs a 2-D Dense's backward pass markedly faster than a 3-D one's.
    h = layer_norm(c)(x).reshape(b * t, d)
    h = dense(c, c.mlp_ratio * c.embed_dim, use_bias=c.use_bias, kernel_init=init_normal)(h)
    h = gelu(h, approximate=not c.exact_gelu)
    h = dense(c, c.embed_dim, use_bias=c.use_bias,
                 kernel_init=nn.initializers.normal(0.02 / jnp.sqrt(2.0 * c.num_layers)))(h)
    return x + nn.Dropout(c.dropout)(h.reshape(b, t, d), deterministic=not train)


class TransformerLM(nn.Module):
  """tokens (B, T) -> next-token logits (B, T, vocab). With decode=True, T is 1 and the position is
  taken from (and advanced in) the cache, which holds `context` positions: decoding past them gives NaN
  logits (the position is a traced value, not checked; gm_jax.sampling.autoregressive stops in time)."""

  config: TransformerConfig

  @nn.compact
  def __call__(self, tokens_BT, train: bool = False, decode: bool = False):
    c = self.config
    t = tokens_BT.shape[1]
    if t > c.context:  # the learned positions would read past their table (NaN), rotary ones extrapolate
      raise ValueError(f"{t} tokens exceed the model's context of {c.context}")
    if decode:
      index = self.variable("cache", "index", lambda: jnp.array(0, jnp.int32))
      positions = index.value + jnp.arange(t)
      index.value = index.value + t
    else:
      positions = jnp.arange(t)
    embed = nn.Embed(c.vocab_size, c.embed_dim, embedding_init=init_normal, name="embed")
    if c.one_hot_embedding:  # float32: in bfloat16 the product rounded the table's rows
      with jax.named_scope(precision.ONE_HOT_LOOKUP):
        x = precision.einsum("btv,vd->btd", jax.nn.one_hot(tokens_BT, c.vocab_size), embed.embedding)
    else:
      x = embed(tokens_BT)
    if c.positions == "learned":
      table = self.param("pos_embed", init_normal, (c.context, c.embed_dim))
      x = x + jnp.take(table, positions, axis=0)[None]
    x = nn.Dropout(c.dropout)(x, deterministic=not train)
    for i in range(c.num_layers):
      x = Block(c, name=f"block_{i}")(x, positions, train, decode)
    x = layer_norm(c, name="ln_f")(x)
    if c.tie_embeddings:
      return einsum(c, "btd,vd->btv", x, embed.embedding)  # float32 logits
    return dense(c, c.vocab_size, use_bias=False, kernel_init=init_normal, name="head")(x)
