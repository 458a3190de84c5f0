"""The DCGAN matches the seed's PyTorch network, and its rewritten convolutions are exact."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.models import dcgan
from gm_jax.models.dcgan import Conv4x4Stride2, ConvTranspose5x5Stride2, DCGANDiscriminator, DCGANGenerator

# Parameter counts of the seed's Generator(in_dim=100, feature_dim=64) and Discriminator(3, 64), by
# layer: Linear 100x8192 (no bias) + BN 2x8192; ConvT 512->256, 256->128, 128->64 (5x5, no bias) with BN
# 2x256, 2x128, 2x64; ConvT 64->3 (5x5, no bias). Conv 3->64 4x4 + bias; Conv 64->128, 128->256,
# 256->512 4x4 + bias with BN; Conv 512->1 4x4 + bias.
SEED_GENERATOR_PARAMS = (100 * 8192 + 2 * 8192 + 512 * 256 * 25 + 2 * 256 + 256 * 128 * 25 + 2 * 128
                         + 128 * 64 * 25 + 2 * 64 + 64 * 3 * 25)
SEED_DISCRIMINATOR_PARAMS = (3 * 64 * 16 + 64 + 64 * 128 * 16 + 128 + 2 * 128 + 128 * 256 * 16 + 256
                             + 2 * 256 + 256 * 512 * 16 + 512 + 2 * 512 + 512 * 16 + 1)


def _count(params):
  return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(params))


def _scattered_conv_transpose(x_BHWI, kernel_55IO):
  """PyTorch's rule y[2 i + k - 2] += x[i] w[k] (padding 2, output padding 1), tap by tap, without a
  convolution: each tap's products scattered into every other row and column of a padded output."""
  b, h, w, _ = x_BHWI.shape
  full = jnp.zeros((b, 2 * h + 3, 2 * w + 3, kernel_55IO.shape[3]))
  for ky in range(5):
    for kx in range(5):
      products = jnp.einsum("bhwi,io->bhwo", x_BHWI, kernel_55IO[ky, kx])
      full = full.at[:, ky:ky + 2 * h:2, kx:kx + 2 * w:2].add(products)
  return full[:, 2:2 + 2 * h, 2:2 + 2 * w]


# 3: input-dilated forward pass, sub-pixel gradients; 5: parities forward, sub-pixel gradients; 16: parities.
@pytest.mark.parametrize("features", [3, 5, 16])
def test_transposed_conv_and_its_gradients_equal_the_scattered_taps(features):
  layer = ConvTranspose5x5Stride2(features)
  x = jax.random.normal(jax.random.key(0), (2, 6, 7, 3))
  params = layer.init(jax.random.key(1), x)
  kernel = jax.random.normal(jax.random.key(2), params["params"]["kernel"].shape)
  params = {"params": {"kernel": kernel}}
  expected = _scattered_conv_transpose(x, kernel)
  got = layer.apply(params, x)
  assert got.shape == (2, 12, 14, features)
  np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-5)
  # Its gradients too (the backward pass is what the rewrite speeds up).
  got = jax.grad(lambda x, k: jnp.sum(layer.apply({"params": {"kernel": k}}, x) ** 2), (0, 1))(x, kernel)
  want = jax.grad(lambda x, k: jnp.sum(_scattered_conv_transpose(x, k) ** 2), (0, 1))(x, kernel)
  for g_got, g_ref in zip(got, want):
    np.testing.assert_allclose(g_got, g_ref, atol=1e-4, rtol=1e-4)


def test_transposed_conv_follows_pytorchs_index_rule():
  """y[o] = sum_i x[i] w[o - 2 i + 2] for 0 <= o - 2 i + 2 < 5 (PyTorch, padding 2, output padding 1)."""
  x = jax.random.normal(jax.random.key(2), (1, 3, 1, 1))
  w = jax.random.normal(jax.random.key(3), (5, 5, 1, 1))
  y = np.asarray(ConvTranspose5x5Stride2(1).apply({"params": {"kernel": w}}, x))[0, :, 0, 0]
  xs, ws = np.asarray(x)[0, :, 0, 0], np.asarray(w)
  for o in range(6):
    expected = 0.0
    for i in range(3):
      for j in range(1):
        ky, kx = o - 2 * i + 2, 0 - 2 * j + 2
        if 0 <= ky < 5:
          expected += xs[i] * ws[ky, kx, 0, 0]
    assert y[o] == pytest.approx(expected, abs=1e-5)


def test_dcgan64_matches_the_seeds_network():
  gen, disc = DCGANGenerator(64, 3, 64), DCGANDiscriminator(64, 64)
  z = jnp.zeros((2, 100))
  g_vars = jax.jit(functools.partial(gen.init, train=False))(jax.random.key(0), z)
  # Shapes by tracing: the full-size network run op by op took most of the test's time.
  assert jax.eval_shape(functools.partial(gen.apply, train=False), g_vars, z).shape == (2, 64, 64, 3)
  images = jnp.zeros((2, 64, 64, 3))
  d_vars = jax.jit(functools.partial(disc.init, train=False))(jax.random.key(1), images)
  assert jax.eval_shape(functools.partial(disc.apply, train=False), d_vars, images).shape == (2,)
  assert _count(g_vars["params"]) == SEED_GENERATOR_PARAMS == 5_142_080
  assert _count(d_vars["params"]) == SEED_DISCRIMINATOR_PARAMS == 2_766_529
  kernels = [a for path, a in jax.tree_util.tree_leaves_with_path(g_vars["params"]) if "kernel" in str(path)]
  assert all(abs(float(jnp.std(k)) - 0.02) < 0.003 for k in kernels if k.size > 10_000)


@pytest.mark.parametrize("size,channels", [(32, 3), (28, 1), (8, 1)])
def test_other_image_sizes(size, channels):
  gen, disc = DCGANGenerator(size, channels, 16), DCGANDiscriminator(size, 16, norm="layer")
  z = jnp.zeros((3, 32))
  generate = jax.jit(lambda key, z: gen.apply(gen.init(key, z, train=False), z, train=False))
  images = generate(jax.random.key(0), z)
  assert images.shape == (3, size, size, channels)
  logits = jax.jit(lambda key, x: disc.apply(disc.init(key, x), x))(jax.random.key(1), images)
  assert logits.shape == (3,)


def test_generator_images_end_in_tanh():
  """Levels in [-1, 1]: with its weights scaled up the generator saturates there and never beyond."""
  gen = DCGANGenerator(8, 1, 16)
  z = jax.random.normal(jax.random.key(0), (4, 32))
  variables = gen.init(jax.random.key(1), z, train=False)
  loud = {**variables, "params": jax.tree.map(lambda p: 50.0 * p, variables["params"])}
  peak = np.abs(np.asarray(gen.apply(loud, z, train=False))).max()
  assert 0.99 < peak <= 1.0


def test_critic_layer_norm_normalizes_each_example_over_its_whole_feature_map():
  """As the WGAN-GP authors' critic: statistics over height, width and channels per example (flax's default
  normalized each pixel over its channels alone), a scale and offset per channel."""
  x = jax.random.normal(jax.random.key(0), (3, 4, 5, 6)) * jnp.arange(1.0, 7.0) + jnp.arange(3.0)[:, None,
                                                                                                None, None]
  norm = dcgan.critic_layer_norm()
  variables = norm.init(jax.random.key(1), x)
  assert jax.tree.map(jnp.shape, variables["params"]) == {"scale": (6,), "bias": (6,)}
  x64 = np.asarray(x, np.float64)
  mean, var = x64.mean(axis=(1, 2, 3), keepdims=True), x64.var(axis=(1, 2, 3), keepdims=True)
  np.testing.assert_allclose(norm.apply(variables, x), (x64 - mean) / np.sqrt(var + 1e-5), atol=2e-5)
  scale, bias = jnp.arange(1.0, 7.0), jnp.arange(6.0) / 10
  np.testing.assert_allclose(norm.apply({"params": {"scale": scale, "bias": bias}}, x),
                             (x64 - mean) / np.sqrt(var + 1e-5) * np.asarray(scale) + np.asarray(bias),
                             atol=1e-4)
  # The critic itself normalizes its second convolution's maps so (at the initial scale 1 and offset 0).
  disc = DCGANDiscriminator(16, 8, norm="layer")
  images = jax.random.uniform(jax.random.key(2), (3, 16, 16, 3), minval=-1, maxval=1)
  _, state = disc.apply(disc.init(jax.random.key(3), images), images, capture_intermediates=True,
                        mutable=["intermediates"])
  conv = np.asarray(state["intermediates"]["Conv_1"]["__call__"][0], np.float64)
  normalized = np.asarray(state["intermediates"]["LayerNorm_0"]["__call__"][0])
  mean, var = conv.mean(axis=(1, 2, 3), keepdims=True), conv.var(axis=(1, 2, 3), keepdims=True)
  np.testing.assert_allclose(normalized, (conv - mean) / np.sqrt(var + 1e-5), atol=1e-4)


@pytest.mark.parametrize("height,width,channels", [(8, 6, 3), (6, 4, 8), (5, 7, 3), (4, 6, 128)])
def test_strided_conv_and_its_gradients_equal_the_plain_convolution(height, width, channels):
  # Even sizes take the input gradient by parity (XLA's with an image's few channels), odd ones the
  # plain convolution; few channels the kernel gradient as matmuls, many XLA's.
  layer = Conv4x4Stride2(5)
  x = jax.random.normal(jax.random.key(0), (2, height, width, channels))
  params = layer.init(jax.random.key(1), x)["params"]
  kernel = jax.random.normal(jax.random.key(2), params["kernel"].shape)

  def plain(x, k):
    return jax.lax.conv_general_dilated(x, k, (2, 2), ((1, 1), (1, 1)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

  def ours(x, k):
    return layer.apply({"params": {"kernel": k, "bias": params["bias"]}}, x)

  np.testing.assert_allclose(ours(x, kernel), plain(x, kernel), atol=1e-5, rtol=1e-5)
  loss = lambda f: lambda x, k: jnp.sum(jnp.sin(f(x, k)))
  for got, want in zip(jax.grad(loss(ours), (0, 1))(x, kernel), jax.grad(loss(plain), (0, 1))(x, kernel)):
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
  # Second order, as a gradient penalty takes it: the kernel's gradient of the input gradient's norm.
  penalty = lambda f: lambda k: jnp.sum(jax.grad(loss(f))(x, k) ** 2)
  got, want = jax.grad(penalty(ours))(kernel), jax.grad(penalty(plain))(kernel)
  np.testing.assert_allclose(got, want, atol=1e-4 * float(jnp.max(jnp.abs(want))), rtol=1e-4)


def test_bfloat16_gradients_equal_the_automatic_ones(monkeypatch):
  # The hand-written backward passes (the transposed convolution's, the strided convolution's input
  # gradient) in the bfloat16 compute dtype, against XLA's automatic ones in the same
  # dtype: equal up to bfloat16 rounding (bfloat16 itself moves these gradients ~5% from float32's).
  gen = DCGANGenerator(16, 3, 8, compute_dtype="bfloat16")
  disc = DCGANDiscriminator(16, 8, norm="layer", compute_dtype="bfloat16")
  z = jax.random.normal(jax.random.key(0), (4, 100))
  g_vars = gen.init(jax.random.key(1), z, train=False)
  d_vars = disc.init(jax.random.key(2), gen.apply(g_vars, z, train=False))
  loss = lambda gp, dp: jnp.mean(disc.apply(dp, gen.apply(gp, z, train=False)) ** 2)
  ours = jax.jit(jax.grad(loss, (0, 1)))(g_vars, d_vars)
  monkeypatch.setattr(dcgan, "conv_transpose_5x5_stride2", dcgan._conv_transpose_5x5_stride2)
  monkeypatch.setattr(dcgan, "conv_4x4_stride2", dcgan._conv_4x4_stride2)
  automatic = jax.jit(jax.grad(loss, (0, 1)))(g_vars, d_vars)
  for got, want in zip(jax.tree.leaves(ours), jax.tree.leaves(automatic)):
    assert float(jnp.linalg.norm(got - want)) <= 2e-2 * float(jnp.linalg.norm(want))
