"""Transformer LM: causality, KV-cache decoding equals the full forward pass, and the samplers' greedy,
temperature, top-k and top-p distributions."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.models.attention import rotary, rotary_tables
from gm_jax.models.transformer import TransformerConfig, TransformerLM, gelu
from gm_jax.sampling import autoregressive as ar


def _model(positions="learned"):
  cfg = TransformerConfig(vocab_size=11, context=12, num_layers=2, num_heads=2, embed_dim=16,
                          positions=positions)
  model = TransformerLM(cfg)
  tokens = jax.random.randint(jax.random.key(0), (3, 12), 0, 11)
  params = model.init(jax.random.key(1), tokens)["params"]
  return model, params, tokens


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_causality(positions):
  model, params, tokens = _model(positions)
  forward = jax.jit(model.apply)
  logits = forward({"params": params}, tokens)
  for t in (0, 5, 10):
    changed = tokens.at[:, t + 1:].set((tokens[:, t + 1:] + 3) % 11)
    other = forward({"params": params}, changed)
    np.testing.assert_allclose(other[:, : t + 1], logits[:, : t + 1], atol=1e-6)
    assert not np.allclose(other[:, t + 1:], logits[:, t + 1:])


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_more_tokens_than_the_context_are_refused(positions):
  """A whole (context + 1)-token window passed by mistake read past the learned position table (NaN
  logits everywhere) or extrapolated rotary positions."""
  model, params, tokens = _model(positions)
  with pytest.raises(ValueError, match=r"^13 tokens exceed the model's context of 12"):
    model.apply({"params": params}, jnp.concatenate([tokens, tokens[:, :1]], axis=1))


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_kv_cache_decoding_matches_the_full_forward_pass(positions):
  model, params, tokens = _model(positions)
  full = model.apply({"params": params}, tokens)
  cache = jax.tree.map(jnp.zeros_like, model.init(jax.random.key(0), tokens[:, :1], decode=True)["cache"])
  step = jax.jit(lambda c, tok: model.apply({"params": params, "cache": c}, tok, decode=True,
                                            mutable=["cache"]))
  for t in range(tokens.shape[1]):
    logits, updates = step(cache, tokens[:, t:t + 1])
    cache = updates["cache"]
    np.testing.assert_allclose(logits[:, 0], full[:, t], atol=1e-5)


def test_rotary_turns_channel_pairs_so_scores_depend_only_on_the_offset():
  d, context = 8, 20
  cos, signed_sin = rotary_tables(context, d)
  q, k = (jax.random.normal(key, (1, 1, 1, d)) for key in jax.random.split(jax.random.key(0)))
  # Position p turns the pair (x_i, x_{i+d/2}) by p * 10000^(-2i/d), as a complex number x_i + j x_{i+d/2}.
  p = 7
  angles = p * 10000.0 ** (-np.arange(d // 2) * 2.0 / d)
  z = (np.asarray(q[0, 0, 0, : d // 2]) + 1j * np.asarray(q[0, 0, 0, d // 2:])) * np.exp(1j * angles)
  turned = rotary(q, cos[p:p + 1], signed_sin[p:p + 1])[0, 0, 0]
  np.testing.assert_allclose(turned, np.concatenate([z.real, z.imag]), atol=1e-5)

  def score(m, n):
    return float(jnp.sum(rotary(q, cos[m:m + 1], signed_sin[m:m + 1])
                         * rotary(k, cos[n:n + 1], signed_sin[n:n + 1])))

  for offset in (0, 3, 11):
    np.testing.assert_allclose([score(m + offset, m) for m in (0, 4, 8)], score(offset, 0), rtol=1e-4)
  assert abs(score(3, 0) - score(0, 0)) > 1e-3


@pytest.mark.parametrize("compute_dtype", ["float32", "bfloat16"])
def test_one_hot_embedding_equals_the_gather(compute_dtype):
  """Also in bfloat16, where the product rounded the table's rows (logits 0.013 apart)."""
  model, params, tokens = _model()
  model = TransformerLM(TransformerConfig(**{**model.config.__dict__, "compute_dtype": compute_dtype}))
  gather = TransformerLM(TransformerConfig(**{**model.config.__dict__, "one_hot_embedding": False}))
  np.testing.assert_allclose(model.apply({"params": params}, tokens),
                             gather.apply({"params": params}, tokens), atol=1e-6)


def test_generate_keeps_the_prompt_and_greedy_matches_argmax_decoding():
  model, params, tokens = _model()
  prompt = tokens[:, :4]
  out = ar.generate(model, params, prompt, jax.random.key(0), num_new=6, temperature=0.0)
  np.testing.assert_array_equal(out[:, :4], prompt)
  # Greedy by full forward passes, one token at a time (each length compiled as one program: run op by
  # op, the six lengths' forward passes took 14 s).
  forward = jax.jit(model.apply)
  seq = prompt
  for _ in range(6):
    nxt = jnp.argmax(forward({"params": params}, seq)[:, -1], axis=-1)
    seq = jnp.concatenate([seq, nxt[:, None]], axis=1)
  np.testing.assert_array_equal(out, seq)


def test_temperature_to_zero_equals_greedy():
  logits = jax.random.normal(jax.random.key(0), (64, 50)) * 3
  greedy = ar.next_token(jax.random.key(1), logits, temperature=0.0)
  for seed in range(5):
    cold = ar.next_token(jax.random.key(seed), logits, temperature=1e-4)
    np.testing.assert_array_equal(cold, greedy)


LOGITS = np.array([2.0, 1.5, 0.3, 0.0, -0.5, -2.0])


def _filtered_tempered_probs(temperature, top_k, top_p):
  """softmax(logits / temperature) over the kept tokens: the top k, then the smallest set of those whose
  probability (at this temperature, renormalized over the top k) reaches top_p."""
  kept = np.ones(len(LOGITS), bool)
  if top_k:
    kept &= LOGITS >= np.sort(LOGITS)[::-1][top_k - 1]
  if top_p < 1.0:
    order = np.argsort(-LOGITS)
    p = np.where(kept, np.exp(LOGITS / temperature), 0.0)[order]
    p /= p.sum()
    mass_before = np.cumsum(p) - p
    kept[order[mass_before >= top_p]] = False
  w = np.where(kept, np.exp(LOGITS / temperature), 0.0)
  return w / w.sum()


@pytest.mark.parametrize("temperature,top_k,top_p,support", [(2.0, 0, 1.0, 6), (0.5, 3, 1.0, 3),
                                                             (1.5, 0, 0.7, 3),
                                                             (1.5, 0, 0.85, 4), (0.7, 4, 0.9, 2)])
def test_next_token_draws_from_the_filtered_tempered_softmax(temperature, top_k, top_p, support):
  """Token frequencies over 20,000 draws within 5 standard errors of the filtered, tempered softmax; filtered
  tokens never drawn. (With top_k 4 and top_p 0.9 only 2 tokens remain: the nucleus is of the tempered
  top-k mass.)"""
  expected = _filtered_tempered_probs(temperature, top_k, top_p)
  assert np.count_nonzero(expected) == support
  draws = 20_000
  logits = jnp.broadcast_to(jnp.asarray(LOGITS, jnp.float32), (draws, len(LOGITS)))
  draw = jax.jit(lambda k, l: ar.next_token(k, l, temperature, top_k,
                                            top_p))  # logits an argument, not a constant
  tokens = np.asarray(draw(jax.random.key(3), logits))
  freq = np.bincount(tokens, minlength=len(LOGITS)) / draws
  assert np.all(freq[expected == 0] == 0)
  assert np.all(np.abs(freq - expected) <= 5 * np.sqrt(expected * (1 - expected) / draws)), (freq, expected)


@pytest.mark.parametrize("top_k,top_p", [(0, 0.0), (0, 1.5), (-1, 1.0)])
def test_filters_that_would_keep_no_token_or_every_token_wrongly_are_refused(top_k, top_p):
  # top_p = 0 used to drop every logit, so every draw was token 0 whatever the model predicted.
  with pytest.raises(ValueError, match=r"top_p=.* must be in \(0, 1\] and top_k=.* >= 0"):
    ar.next_token(jax.random.key(0), jnp.zeros((1, 4)), 1.0, top_k, top_p)


@pytest.mark.parametrize("temperature,top_p", [(2.0, 0.45), (0.5, 0.6)])
def test_top_p_nucleus_is_taken_from_the_tempered_distribution(temperature, top_p):
  """Temperature first, then the nucleus: a draw from q = softmax(logits / T) restricted to the fewest most
  likely tokens whose mass under q reaches top_p, renormalized. (A nucleus of the untempered distribution
  would be {0} at T = 2 and {0, 1} at T = 0.5 here, against {0, 1} and {0}.)"""
  probs = np.array([0.5, 0.3, 0.2])
  q = probs ** (1.0 / temperature)
  q /= q.sum()
  mass_before = np.cumsum(q) - q  # q is already sorted in decreasing order
  expected = np.where(mass_before < top_p, q, 0.0)
  expected /= expected.sum()
  logits = jnp.log(jnp.asarray(probs, jnp.float32))[None]
  draws = jax.vmap(lambda k: ar.next_token(k, logits, temperature, top_p=top_p))(
      jax.random.split(jax.random.key(0), 20_000))
  frequencies = np.bincount(np.asarray(draws).ravel(), minlength=3) / draws.size
  np.testing.assert_allclose(frequencies, expected, atol=0.02)  # standard error <= 0.004


def test_recomputed_attention_gives_the_automatic_gradients():
  model, params, tokens = _model("rotary")
  keeping = TransformerLM(dataclasses.replace(model.config, recompute_attention=False))
  loss = lambda m: lambda p: jnp.mean(jax.nn.log_softmax(m.apply({"params": p}, tokens, train=True))[..., 0])
  got, want = (jax.jit(jax.grad(loss(m)))(params) for m in (model, keeping))
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, atol=1e-6)


@pytest.mark.parametrize("approximate", [True, False])
def test_gelu_gives_the_automatic_values_and_gradients(approximate):
  """Its backward pass computes the derivative from the input alone (tanh approximation or exact erf)."""
  import flax.linen as nn

  h = jnp.linspace(-6.0, 6.0, 2001)
  weights = jnp.cos(h)  # another weight per element, so that each element's derivative is checked
  mine, automatic = (jax.jit(jax.value_and_grad(lambda h, f=f: jnp.sum(weights * f(h))))
                     for f in (lambda h: gelu(h, approximate), lambda h: nn.gelu(h, approximate=approximate)))
  (value, grad), (value_want, grad_want) = mine(h), automatic(h)
  np.testing.assert_allclose(value, value_want, rtol=1e-6)
  np.testing.assert_allclose(grad, grad_want, atol=2e-6)
