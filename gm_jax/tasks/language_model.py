"""Autoregressive language model family: a Transformer LM trained by next-token cross-entropy.

Batches hold windows x of context + 1 tokens: inputs x[:, :-1], targets x[:, 1:]. Evaluation is the
cross-entropy over the whole validation split (its windows, with their target_mask, score every token
after the first once), reported as nll_nats per token and bpd = bits per token (per character for char
data).
config.model: num_layers, num_heads, embed_dim, mlp_ratio, dropout, positions, tie_embeddings,
  one_hot_embedding, use_bias, exact_gelu, recompute_attention
config.eval: sample_temperature, sample_top_k, sample_length (for the text samples written by runs; a
  sample's first token is drawn from the training text's token frequencies, the text having no
  begin-of-text token, tempered and filtered as every later token is: greedy decoding starts every
  sample with the most frequent token)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gm_jax.data.dataset import Dataset
from gm_jax.models.transformer import TransformerConfig, TransformerLM
from gm_jax.objectives import cross_entropy
from gm_jax.sampling import autoregressive
from gm_jax.train.task import Likelihood, Task, Update


def transformer_config(config, dataset: Dataset) -> TransformerConfig:
  m = config.model
  return TransformerConfig(vocab_size=dataset.spec.num_levels, context=dataset.spec.shape[0] - 1,
                           num_layers=m.num_layers, num_heads=m.num_heads, embed_dim=m.embed_dim,
                           mlp_ratio=m.mlp_ratio, dropout=m.dropout, positions=m.positions,
                           tie_embeddings=m.tie_embeddings, one_hot_embedding=m.one_hot_embedding,
                           use_bias=m.use_bias, exact_gelu=m.exact_gelu,
                           recompute_attention=m.recompute_attention,
                           compute_dtype=config.train.compute_dtype)


def build(config, dataset: Dataset) -> Task:
  if dataset.spec.kind != "tokens":
    raise ValueError(f"the language_model task needs token data (text or markov); {dataset.name!r} is "
                     f"{dataset.spec.kind!r}")
  model = TransformerLM(transformer_config(config, dataset))
  ev = config.eval
  context, vocab = dataset.spec.shape[0] - 1, dataset.spec.num_levels
  if not 1 <= ev.sample_length <= context:
    raise ValueError(f"eval.sample_length={ev.sample_length} must be in [1, {context}] (the context)")
  if ev.sample_temperature < 0:
    raise ValueError(f"eval.sample_temperature={ev.sample_temperature} must be >= 0 (0: greedy)")
  if not 0 <= ev.sample_top_k <= vocab:
    raise ValueError(f"eval.sample_top_k={ev.sample_top_k} must be in [0, {vocab}] (0: the whole vocabulary)")

  def nll(params, batch, key, train):
    x = batch["x"]
    rngs = {"dropout": key} if train else {}
    logits = model.apply({"params": params["model"]}, x[:, :-1], train=train, rngs=rngs)
    mask = batch["mask"]
    if "target_mask" in batch:  # test windows: the last one's first targets are its predecessor's
      mask = mask[:, None] * batch["target_mask"]
    return cross_entropy.sums(cross_entropy.token_nll(logits, x[:, 1:]), mask)

  def loss_fn(params, model_state, batch, key):
    total, count = nll(params, batch, key, train=True)
    return total / count, ({"nll_nats": (total, count)}, {})

  def eval_fn(params, model_state, batch, key):
    return {"nll_nats": nll(params, batch, key, train=False)}

  # The text has no begin-of-text token: a sample's first token is drawn from the training tokens'
  # frequencies (the law of a window's first token), the rest from the model given what precedes them;
  # the temperature and top-k act on the first draw too.
  counts = np.bincount(np.asarray(dataset.train.tokens).ravel(), minlength=vocab)[:vocab]
  log_unigram = jnp.log(jnp.asarray(counts / counts.sum(), jnp.float32))

  def sample(params, model_state, key, n):
    first_key, key = jax.random.split(key)
    first = autoregressive.next_token(first_key, jnp.broadcast_to(log_unigram, (n, vocab)),
                                      ev.sample_temperature, ev.sample_top_k)
    return autoregressive.generate(model, params["model"], first[:, None].astype(jnp.int32), key,
                                   ev.sample_length - 1, ev.sample_temperature, ev.sample_top_k)

  def init(key, batch):
    return {"model": model.init(key, jnp.asarray(batch["x"][:1, :-1]))}

  # Per token: bpd is bits per token (per character on char data).
  return Task(init=init, updates=(Update("model", loss_fn),), eval_fn=eval_fn, sample_fn=sample,
              likelihood=Likelihood("nll_nats", "exact", num_dims=1, discrete=True))


def default_config():
  """The trainer's defaults plus the language-model fields; experiment configs start from this."""
  from gm_jax.train.defaults import base_config

  config = base_config()
  config.task = "language_model"
  config.model.num_layers = 4
  config.model.num_heads = 4
  config.model.embed_dim = 128
  config.model.mlp_ratio = 4
  config.model.dropout = 0.0
  config.model.positions = "learned"
  config.model.tie_embeddings = True
  config.model.one_hot_embedding = True
  config.model.use_bias = True
  config.model.exact_gelu = False
  config.model.recompute_attention = True
  config.eval.sample_temperature = 1.0
  config.eval.sample_top_k = 0
  config.eval.sample_length = 64
  return config


def tiny(config) -> None:
  """The language model's `:tiny` size: one layer of 32 dimensions over a context of 16 tokens (and a
  Markov corpus of 20,000)."""
  config.data.context = 16
  if config.data.name == "markov":
    config.data.num_tokens = 20_000
  config.model.update(num_layers=1, num_heads=4, embed_dim=32)
  config.eval.sample_length = 16
