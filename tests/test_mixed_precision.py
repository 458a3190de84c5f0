"""train.compute_dtype=bfloat16: parameters and optimizer state stay float32, training tracks float32,
likelihoods agree with float32 evaluation, and the compiled step is traced and compiled once."""

from __future__ import annotations

import jax
from jax._src import source_info_util
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax import data as data_lib
from gm_jax import tasks
from gm_jax.models import precision
from gm_jax.train import sharding, step as step_lib
from tests.conftest import load_config

STEPS = 4


def _setup(name: str, compute_dtype: str):
  config = load_config(name, "tiny")
  config.train.compute_dtype = compute_dtype
  dataset = data_lib.load_dataset(config.data)
  task = tasks.build(config, dataset)
  mesh = sharding.make_mesh()
  batch_size = config.data.batch_size * task.examples_per_step_factor
  it = data_lib.TrainIterator(dataset.train, batch_size, config.data.seed)
  batches = [sharding.put_batch(next(it), mesh) for _ in range(STEPS)]
  init, train_step, _ = step_lib.from_config(task, config, mesh, jax.random.key(1))
  state = init(jax.random.key(0), batches[0])
  return task, state, batches, train_step


def _train(name: str, compute_dtype: str):
  task, state, batches, train_step = _setup(name, compute_dtype)
  losses = []
  for batch in batches:
    state, metrics = train_step(state, batch)
    total, count = metrics["loss"]
    losses.append(float(total / count))
  return task, state, np.array(losses), train_step


@pytest.mark.parametrize("name", ["markov_lm", "toy2d_vae", "toy2d_ddpm"])
def test_bfloat16_training_tracks_float32_and_keeps_float32_state(name):
  task32, state32, losses32, _ = _train(name, "float32")
  task16, state16, losses16, steps16 = _train(name, "bfloat16")
  # bfloat16 rounds matmul inputs to 8 bits of mantissa: the losses of the same steps from the same
  # initialization agree to 2%.
  np.testing.assert_allclose(losses16, losses32, rtol=0.02)
  assert not np.array_equal(losses16, losses32)  # equal: the family ignored compute_dtype
  for leaf in jax.tree.leaves(state16.networks):
    assert leaf.dtype in (jnp.float32, jnp.int32), leaf.dtype  # params, Adam moments, counts
  dtypes = lambda state: jax.tree.map(lambda a: a.dtype, state.networks)
  assert dtypes(state16) == dtypes(state32)
  # No recompilation after the first step: one trace, one compiled executable.
  assert steps16.num_traces == 1 and steps16.jitted._cache_size() == 1
  # The exact likelihood (LM), the ELBO (VAE) and the diffusion bound of the same parameters under
  # bfloat16 compute, with the same random draws.
  params = {k: n.params for k, n in state32.networks.items()}
  model_state = {k: n.model_state for k, n in state32.networks.items()}
  _, _, batches, _ = _setup(name, "float32")
  nll = {}
  for dtype, task in (("float32", task32), ("bfloat16", task16)):
    metrics = jax.jit(task.eval_fn)(params, model_state, batches[0], jax.random.key(3))
    total, count = metrics["nll_nats" if "nll_nats" in metrics else "vlb_nll_nats"]
    assert total.dtype == jnp.float32
    nll[dtype] = float(total / count)
  assert nll["bfloat16"] == pytest.approx(nll["float32"], rel=5e-3)


CONTRACTIONS = ("dot_general", "conv_general_dilated")
# Operations that move or cast a bfloat16 operand on its way into a matmul or a convolution without
# computing with it, and those that only hold sub-programs.
CARRIERS = {"convert_element_type", "transpose", "reshape", "squeeze", "broadcast_in_dim", "copy",
            "copy_p", "optimization_barrier", "pjit", "jit", "closed_call", "remat", "checkpoint",
            "custom_vjp_call", "custom_vjp_call_jaxpr", "custom_jvp_call", "scan", "while", "cond"}


def _contractions(jaxpr, found: list, leaks: list | None = None) -> list:
  """(primitive, operand dtypes) of every dot and convolution in a jaxpr and its sub-jaxprs; `leaks`
  collects where bfloat16 goes anywhere else: a contraction's bfloat16 result, an operation computing
  with bfloat16 values, a bfloat16 value cast back up."""
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    ins, outs = ([str(getattr(v.aval, "dtype", "")) for v in vs] for vs in (eqn.invars, eqn.outvars))
    if name in CONTRACTIONS and precision.ONE_HOT_LOOKUP not in str(eqn.source_info.name_stack):
      found.append((name, tuple(ins)))
    if leaks is not None and "bfloat16" in ins + outs and (
        (name in CONTRACTIONS and "bfloat16" in outs) or (name not in CONTRACTIONS + tuple(CARRIERS))
        or (name == "convert_element_type" and ins == ["bfloat16"] and outs != ["bfloat16"])):
      leaks.append(f"{name} {ins} -> {outs} at {source_info_util.summarize(eqn.source_info)}")
    for param in eqn.params.values():
      for sub in param if isinstance(param, (tuple, list)) else (param,):
        if isinstance(sub, (jax.extend.core.ClosedJaxpr, jax.extend.core.Jaxpr)):
          _contractions(getattr(sub, "jaxpr", sub), found, leaks)
  return found


@pytest.mark.parametrize("name, overrides, kinds", [
    ("toy2d_maf", {}, ("dot_general",)),  # MADE
    ("digits_vae_iaf", {}, ("dot_general",)),  # the VAE's networks, its IAF posterior's MADEs and context
    ("digits_pixelrnn", {}, ("dot_general", "conv_general_dilated")),  # Diagonal BiLSTM
    ("digits_pixelrnn", {"model": {"architecture": "row_lstm"}}, ("dot_general", "conv_general_dilated")),
    # Spline couplings' ResNets; the invertible 1x1 convolutions (dots) stay float32 by design.
    ("digits_nsf", {}, ("conv_general_dilated",)),
    # Scanned ResNet blocks, and the variational dequantizer's conditioners.
    ("digits_realnvp", {"model": {"scan_blocks": True, "hidden": (8, 8, 8)},
                        "objective": {"dequantization": "variational"}}, ("conv_general_dilated",)),
    ("digits_pixelcnn_conditional", {}, ("dot_general", "conv_general_dilated")),  # not its label lookups
    ("digits_ddpm", {}, ("conv_general_dilated",)),  # the U-Net (attention, GroupNorm, time embedding)
    ("digits_dcgan", {}, ("conv_general_dilated",)),  # both players, BatchNorm, the parity convolutions
    ("digits_glow", {}, ("conv_general_dilated",)),  # ActNorm, the glow conditioners
    ("digits_classifier", {}, ("dot_general", "conv_general_dilated")),
    # The three families whose bfloat16 training is compared with float32's above.
    ("markov_lm", {}, ("dot_general",)),  # the Transformer's own-gradient matmuls
    ("toy2d_vae", {}, ("dot_general",)),
    ("toy2d_ddpm", {}, ("dot_general",)),
])
def test_bfloat16_compute_reaches_every_network(name, overrides, kinds):
  """Under compute_dtype=bfloat16 every matmul / convolution of the given kinds in the training loss
  takes bfloat16 operands (a network that ignored the field would keep float32 ones), and in the loss,
  the evaluation and the sampler bfloat16 goes nowhere else: into no log-det, softmax, normalization,
  LSTM cell, time embedding or likelihood term (a bfloat16 spline or time embedding had left every test
  passing while the likelihood moved 30-50 times further from float32's)."""
  config = load_config(name, "tiny")
  config.train.compute_dtype = "bfloat16"
  for section, fields in overrides.items():
    config[section].update(fields)
  dataset = data_lib.load_dataset(config.data)
  task = tasks.build(config, dataset)
  batch_size = config.data.batch_size * task.examples_per_step_factor
  batch = next(data_lib.TrainIterator(dataset.train, batch_size, 0))
  variables = jax.eval_shape(task.init, jax.random.key(0), batch)
  params = {k: v["params"] for k, v in variables.items()}
  model_state = {k: {c: x for c, x in v.items() if c != "params"} for k, v in variables.items()}
  leaks = []
  for update in task.updates:
    jaxpr = jax.make_jaxpr(update.loss_fn)(params, model_state, batch, jax.random.key(1)).jaxpr
    found = [dtypes for kind, dtypes in _contractions(jaxpr, [], leaks) if kind in kinds]
    assert found and all(dtypes == ("bfloat16", "bfloat16") for dtypes in found), found
  others = [jax.make_jaxpr(task.eval_fn)(params, model_state, batch, jax.random.key(1))]
  if task.sample_fn is not None:
    others.append(jax.make_jaxpr(lambda p, s, k: task.sample_fn(p, s, k, 2))(params, model_state,
                                                                             jax.random.key(1)))
  for closed in others:
    _contractions(closed.jaxpr, [], leaks)
  assert not leaks, leaks[:5]


def test_custom_gradient_einsum_equals_the_plain_one():
  a = jax.random.normal(jax.random.key(0), (3, 5, 2, 4))
  b = jax.random.normal(jax.random.key(1), (3, 6, 2, 4))
  spec = "bthd,bshd->bhts"
  f = lambda dtype, custom: lambda a, b: jnp.sum(jnp.sin(precision.einsum(spec, a, b, dtype, custom)))
  want = jax.value_and_grad(f(jnp.float32, False), (0, 1))(a, b)
  for dtype, tol in ((jnp.float32, 1e-5), (jnp.bfloat16, 3e-2)):
    got = jax.jit(jax.value_and_grad(f(dtype, True), (0, 1)))(a, b)
    assert got[0].dtype == jnp.float32
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(g, w, atol=tol * max(1.0, float(jnp.max(jnp.abs(w)))))


def test_a_bfloat16_convolution_keeps_its_bias_float32():
  """Only the convolution's operands are rounded: the bias is added, and differentiated, in float32."""
  variables = {"params": {"kernel": jnp.full((1, 1, 1, 1), 0.5), "bias": jnp.array([0.1234567])}}
  x = jnp.ones((1, 2, 2, 1))
  layer = precision.Conv(1, (1, 1), dtype=jnp.bfloat16)
  out = layer.apply(variables, x)
  assert out.dtype == jnp.float32
  np.testing.assert_array_equal(out, np.full((1, 2, 2, 1), 0.5 + np.float32(0.1234567), np.float32))
  loss = lambda v: jnp.sum(jnp.sin(layer.apply(v, x)))
  grad = jax.grad(loss)(variables)["params"]["bias"]
  np.testing.assert_allclose(grad, [4 * np.cos(0.6234567)], rtol=1e-6)


def test_unknown_compute_dtype_is_rejected():
  with pytest.raises(ValueError, match="compute_dtype"):
    precision.compute_dtype("float16")
