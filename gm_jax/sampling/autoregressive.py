"""Autoregressive decoding with a key/value cache: greedy, temperature, top-k and top-p (nucleus).

`next_token` turns one step's logits into tokens; `generate` feeds a prompt through the cache one token
at a time and then samples `num_new` tokens, all inside one jitted `lax.scan`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def filter_logits(logits_BV: jax.Array, top_k: int = 0, top_p: float = 1.0) -> jax.Array:
  """Sets to -inf every logit outside the top k (k > 0; logits tied with the k-th stay) and outside the
  smallest set of tokens whose probability reaches top_p (top_p < 1)."""
  if not 0.0 < top_p <= 1.0 or top_k < 0:
    raise ValueError(f"top_p={top_p} must be in (0, 1] and top_k={top_k} >= 0 (0: no top-k filter)")
  neg_inf = jnp.finfo(logits_BV.dtype).min
  if top_k:
    kth = jax.lax.top_k(logits_BV, top_k)[0][:, -1:]
    logits_BV = jnp.where(logits_BV < kth, neg_inf, logits_BV)
  if top_p < 1.0:
    sorted_desc = jnp.sort(logits_BV, axis=-1)[:, ::-1]
    probs = jax.nn.softmax(sorted_desc, axis=-1)
    # Keep a token if the probability mass strictly before it is below top_p (the first always stays).
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    cutoff = jnp.min(jnp.where(mass_before < top_p, sorted_desc, jnp.inf), axis=-1, keepdims=True)
    logits_BV = jnp.where(logits_BV < cutoff, neg_inf, logits_BV)
  return logits_BV


def next_token(key: jax.Array, logits_BV: jax.Array, temperature: float = 1.0, top_k: int = 0,
               top_p: float = 1.0) -> jax.Array:
  """temperature 0 is greedy (argmax); otherwise a draw from softmax(logits / temperature) after the
  filters, which act on that tempered distribution (the nucleus is top_p of its mass, not of the model's)."""
  if temperature == 0.0:
    return jnp.argmax(logits_BV, axis=-1)
  return jax.random.categorical(key, filter_logits(logits_BV / temperature, top_k, top_p), axis=-1)


@functools.partial(jax.jit, static_argnames=("model", "num_new", "temperature", "top_k", "top_p"))
def generate(model, params, prompt_BP: jax.Array, key: jax.Array, num_new: int, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0) -> jax.Array:
  """Returns (B, P + num_new) tokens: the prompt followed by sampled tokens (P + num_new <= context)."""
  b, p = prompt_BP.shape
  if p + num_new > model.config.context:
    raise ValueError(f"prompt ({p}) + new tokens ({num_new}) exceed the context ({model.config.context})")
  cache = model.init(jax.random.key(0), prompt_BP[:, :1], decode=True)["cache"]
  cache = jax.tree.map(jnp.zeros_like, cache)

  def step(carry, i):
    cache, token, tokens = carry
    logits, updates = model.apply({"params": params, "cache": cache}, token[:, None], decode=True,
                                  mutable=["cache"])
    sampled = next_token(jax.random.fold_in(key, i), logits[:, 0], temperature, top_k, top_p)
    # While reading the prompt, the next input is the prompt's next token, not the sample.
    in_prompt = i + 1 < p
    following = jnp.where(in_prompt, prompt_BP[:, jnp.minimum(i + 1, p - 1)], sampled)
    tokens = tokens.at[:, i + 1].set(following)
    return (updates["cache"], following, tokens), None

  tokens = jnp.zeros((b, p + num_new), prompt_BP.dtype).at[:, :p].set(prompt_BP)
  (_, _, tokens), _ = jax.lax.scan(step, (cache, prompt_BP[:, 0], tokens), jnp.arange(p + num_new - 1))
  return tokens
