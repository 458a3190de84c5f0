"""The hierarchical VAE's log-weight terms against a float64 NumPy forward pass of the same parameters, at
the latents each sample drew (read off the modules they enter); the IAF posterior's density against
the change of variables of its flow."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from scipy import special
from scipy.stats import norm

from gm_jax.models.decoders import Decoder
from gm_jax.models.vae import HierarchicalVAE, VAEConfig
from gm_jax.models.vae_iaf import IAFPosteriorVAE
from gm_jax.objectives import elbo as elbo_lib
from gm_jax.train.rng import per_example_keys

LEVELS = 17


def inputs_of(model, params, x, keys, num_samples, names, all_args=False):
  """log_weights' terms and what each of the named submodules was called with (its first argument, or
  with all_args all its arguments)."""

  @jax.jit
  def run(params, x, keys):
    entered = {}

    def record(next_fun, args, kwargs, context):
      if context.method_name == "__call__" and context.module.name in names:
        entered[context.module.name] = args if all_args else args[0]
      return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
      terms = model.apply({"params": params}, x, keys, num_samples, method=type(model).log_weights)
    return terms, [entered[name] for name in names]

  terms, inputs = run(params, x, keys)
  if all_args:
    return terms, inputs[0] if len(names) == 1 else inputs
  return terms, [np.asarray(h, np.float64) for h in inputs]


def log_weights_and_latents(model, params, x, keys, num_samples):
  """log_weights' terms and the latents z_1..z_L it drew, each (K, B, d_l) in float64: z_1 enters p(x | z_1)'s
  trunk and z_{l+1} enters p(z_l | z_{l+1})."""
  names = ["p_x_trunk"] + [f"p_z{l}" for l in range(1, len(model.config.latent_dims))]
  return inputs_of(model, params, x, keys, num_samples, names)


def _model(latent_dims, hidden, conv=()):
  cfg = VAEConfig(x_shape=(8, 8, 1), latent_dims=latent_dims, hidden=hidden,
                  decoder=Decoder("categorical", num_levels=LEVELS), conv_channels=conv)
  model = HierarchicalVAE(cfg)
  x = jnp.asarray(np.random.default_rng(0).integers(0, LEVELS, size=(3, 8, 8, 1)))
  keys = per_example_keys(jax.random.key(0), jnp.arange(3))
  return model, random_params(model, x, keys), x, keys


def random_params(model, x, keys, seed=1):
  """Parameters of the model's shapes (found without compiling its initializer): kernels N(0, 1 / fan-in),
  biases N(0, 0.1^2)."""
  shapes = jax.eval_shape(lambda key: model.init(key, x, keys, 1, method=type(model).log_weights),
                          jax.random.key(0))["params"]
  rng = np.random.default_rng(seed)

  def draw(leaf):
    scale = 1.0 / np.sqrt(np.prod(leaf.shape[:-1])) if len(leaf.shape) > 1 else 0.1
    return jnp.asarray(rng.normal(size=leaf.shape) * scale, jnp.float32)

  return jax.tree.map(draw, shapes)


def _np(tree):
  return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def _mlp(p, h):
  """tanh(Dense) layers, in order."""
  for i in range(len(p)):
    h = np.tanh(h @ p[f"Dense_{i}"]["kernel"] + p[f"Dense_{i}"]["bias"])
  return h


def _head(p, h, min_log_std=-6.0):
  h = _mlp(p.get("MLP_0", {}), h)
  mean = h @ p["mean"]["kernel"] + p["mean"]["bias"]
  log_std = np.maximum(h @ p["log_std"]["kernel"] + p["log_std"]["bias"], min_log_std)
  return mean, np.exp(log_std)


def test_three_layer_terms_equal_a_numpy_forward_pass():
  """q(z_1 | x) reads the levels rescaled to [-1, 1]; q(z_l | z_{l-1}) and p(z_l | z_{l+1}) are tanh-MLP
  Gaussians with log-stds clamped at -6; p(z_3) = N(0, I); p(x | z_1) is a categorical over the 17 levels.
  Each term of every sample equals its NumPy value at the drawn latents, whose noise is standard normal."""
  model, params, x, keys = _model((8, 6, 4), ((32,), (16,), (16,)))
  # Two log-stds far below the clamp, one in the posterior and one in the prior.
  params["q_z2"]["log_std"]["bias"] = params["q_z2"]["log_std"]["bias"].at[0].set(-10.0)
  params["p_z1"]["log_std"]["bias"] = params["p_z1"]["log_std"]["bias"].at[0].set(-10.0)
  k = 200
  terms, (z1, z2, z3) = log_weights_and_latents(model, params, x, keys, k)
  p = _np(params)
  xn = np.asarray(x, np.float64).reshape(3, -1)
  q1 = _head(p["q_z1"], 2.0 * xn / (LEVELS - 1) - 1.0)
  q2, q3 = _head(p["q_z2"], z1), _head(p["q_z3"], z2)
  p1, p2 = _head(p["p_z1"], z2), _head(p["p_z2"], z3)
  logits = (_mlp(p["p_x_trunk"], z1) @ p["p_x_out"]["kernel"]
            + p["p_x_out"]["bias"]).reshape(k, 3, 64, LEVELS)
  log_probs = special.log_softmax(logits, -1)
  levels = np.broadcast_to(xn.astype(int), (k, 3, 64))
  expected = {
      "log_qz1": norm.logpdf(z1, *q1).sum(-1), "log_qz2": norm.logpdf(z2, *q2).sum(-1),
      "log_qz3": norm.logpdf(z3, *q3).sum(-1), "log_pz1": norm.logpdf(z1, *p1).sum(-1),
      "log_pz2": norm.logpdf(z2, *p2).sum(-1), "log_pz3": norm.logpdf(z3).sum(-1),
      "log_px": np.take_along_axis(log_probs, levels[..., None], -1).sum((-2, -1)),
      "kl_top_analytic": 0.5 * np.sum(q3[1] ** 2 + q3[0] ** 2 - 1.0 - 2 * np.log(q3[1]), -1)}
  assert sorted(terms) == sorted(expected)
  for name, value in expected.items():
    assert terms[name].shape == (k, 3)
    np.testing.assert_allclose(terms[name], value, rtol=1e-4, atol=1e-3, err_msg=name)
  assert np.isclose(q2[1][..., 0], np.exp(-6.0)).all() and np.isclose(p1[1][..., 0], np.exp(-6.0)).all()
  eps = np.concatenate([((z - m) / s).ravel() for z, (m, s) in ((z1, q1), (z2, q2), (z3, q3))])
  assert abs(eps.mean()) < 5 / np.sqrt(eps.size) and abs(eps.var() - 1) < 5 * np.sqrt(2 / eps.size)

  parts = elbo_lib.elbo_terms(terms, "mc")
  np.testing.assert_allclose(parts["elbo"], elbo_lib.log_importance_weights(terms), rtol=1e-5)
  np.testing.assert_allclose(parts["kl"], parts["kl1"] + parts["kl2"] + parts["kl3"], rtol=1e-5)
  samples = jax.jit(lambda key: model.apply({"params": params}, key, 10, method=HierarchicalVAE.sample))(
      jax.random.key(2))
  assert samples.shape == (10, 8, 8, 1) and int(samples.min()) >= 0 and int(samples.max()) <= LEVELS - 1


def _conv_same_stride_2(h_BHWC, kernel, bias):
  """3x3 convolution, stride 2, SAME padding (for even sizes: one row and column of zeros after the end)."""
  b, hgt, wid, _ = h_BHWC.shape
  padded = np.pad(h_BHWC, ((0, 0), (0, 1), (0, 1), (0, 0)))
  out = np.zeros((b, hgt // 2, wid // 2, kernel.shape[-1]))
  for i in range(hgt // 2):
    for j in range(wid // 2):
      out[:, i, j] = np.einsum("bxyc,xyco->bo", padded[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3], kernel) + bias
  return out


def test_conv_encoder_reads_strided_relu_convolutions_of_the_rescaled_levels():
  model, params, x, keys = _model((8,), ((32,),), conv=(8, 16))
  assert params["conv"]["Conv_0"]["kernel"].shape == (3, 3, 1, 8)
  _, (features_in,) = inputs_of(model, params, x, keys, 2, ["q_z1"])
  p = _np(params)["conv"]
  h = 2.0 * np.asarray(x, np.float64) / (LEVELS - 1) - 1.0
  for layer in ("Conv_0", "Conv_1"):
    h = np.maximum(_conv_same_stride_2(h, p[layer]["kernel"], p[layer]["bias"]), 0.0)
  features = h.reshape(3, -1)
  assert features.shape == (3, 2 * 2 * 16)
  np.testing.assert_allclose(features_in, np.broadcast_to(features, (2, 3, 64)), rtol=1e-5, atol=1e-5)


def test_samples_depend_only_on_their_key():
  model, params, x, _ = _model((8,), ((32,),))
  log_weights = jax.jit(lambda x, keys: model.apply({"params": params}, x, keys, 4,
                                                    method=type(model).log_weights))
  a = log_weights(x, per_example_keys(jax.random.key(0), jnp.arange(3)))
  b = log_weights(x[1:], per_example_keys(jax.random.key(0), jnp.arange(1, 3)))
  np.testing.assert_allclose(a["log_px"][:, 1:], b["log_px"], rtol=1e-5)


def test_iaf_posterior_density_is_the_change_of_variables_of_its_flow():
  """log q(z_T | x) = log N(z_0; mean, std) - log|det dz_T/dz_0| with the determinant of jax.jacobian of the
  IAF steps at the z_0 drawn, and p(z_T) the standard normal's at the z_T they give."""
  cfg = VAEConfig(x_shape=(8, 8, 1), latent_dims=(3,), hidden=((32,),),
                  decoder=Decoder("categorical", num_levels=LEVELS))
  model = IAFPosteriorVAE(cfg, iaf_steps=2, iaf_hidden=(16,), context_dim=4)
  x = jnp.asarray(np.random.default_rng(0).integers(0, LEVELS, size=(3, 8, 8, 1)))
  keys = per_example_keys(jax.random.key(0), jnp.arange(3))
  params = random_params(model, x, keys)
  params = {**params, "iaf": jax.tree.map(lambda a: 4 * a, params["iaf"])}  # steps far from the identity
  terms, (z0, _, context) = inputs_of(model, params, x, keys, 2, ["iaf"], all_args=True)
  apply = functools.partial(model.apply, {"params": params})
  mean, log_std = apply(x, method=lambda m, x: m.posterior(0, m.encoder_features(x)))
  flow = jax.jit(lambda z, c: apply(z, True, c, method=lambda m, z, inverse, c: m.iaf(z, inverse, c)))
  z_t = np.asarray(flow(z0, context)[0], np.float64)
  jacobians = jax.jit(jax.vmap(jax.jacobian(lambda z, c: flow(z[None], c[None])[0][0])))(z0, context)
  log_det = np.linalg.slogdet(np.asarray(jacobians, np.float64))[1]
  assert np.min(np.abs(log_det)) > 0.05  # a flow that changes volume, so a wrong sign would show
  z0_kbd = np.asarray(z0, np.float64).reshape(2, 3, -1)
  log_q0 = norm.logpdf(z0_kbd, np.asarray(mean, np.float64), np.exp(np.asarray(log_std, np.float64))).sum(-1)
  np.testing.assert_allclose(terms["log_qz1"], log_q0 - log_det.reshape(2, 3), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(terms["log_pz1"], norm.logpdf(z_t).sum(-1).reshape(2, 3), rtol=1e-4, atol=1e-4)
  # Reconstructions and interpolations decode the flow's image of the base mean, not the mean itself.
  context_B = context[:3]  # the context repeats for each of the K = 2 draws
  np.testing.assert_allclose(apply(x, method=type(model).encode_mean), flow(mean, context_B)[0], rtol=1e-5)
  assert np.max(np.abs(np.asarray(flow(mean, context_B)[0]) - np.asarray(mean))) > 0.1
