"""Gated PixelCNN: causality of both masks and of the whole network, no blind spot, a normalized
distribution (for each label of a class-conditional one, each label's its own), and raster sampling that
draws from it."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.models import pixelcnn
from gm_jax.models.pixelcnn import PixelCNN, PixelCNNConfig


def _dependencies(fn, x_shape, num_inputs=8):
  """Boolean (out, in) matrix over raster-ordered sub-pixels: does output t depend on input s?"""
  size = int(np.prod(x_shape))
  total = np.zeros((size, size))
  jacobian = jax.jit(jax.jacrev(fn))
  for seed in range(num_inputs):  # several points, so no dependency hides behind a ReLU's flat side
    x = jax.random.uniform(jax.random.key(seed), (1, *x_shape), minval=-1, maxval=1)
    jac = jacobian(x)
    total += np.abs(np.asarray(jac)).reshape(size, size)
  return total > 0


def _masked_layer_dependencies(mask_type, num_channels):
  """A single horizontal masked conv (features = image channels): output sub-pixel vs input sub-pixel."""
  groups = np.arange(num_channels)
  conv = pixelcnn.horizontal_conv(num_channels, 5, groups, groups, mask_type)
  shape = (4, 4, num_channels)
  params = conv.init(jax.random.key(0), jnp.zeros((1, *shape)))
  return _dependencies(lambda x: conv.apply(params, x), shape)


@pytest.mark.parametrize("num_channels", [1, 3])
def test_mask_a_sees_only_earlier_sub_pixels(num_channels):
  dep = _masked_layer_dependencies("A", num_channels)
  assert not np.any(np.triu(dep)), "output t must not depend on input t or later"
  # It does see the sub-pixel just before it in raster order (same row or same pixel).
  assert dep[1, 0]


@pytest.mark.parametrize("num_channels", [1, 3])
def test_mask_b_sees_the_current_sub_pixel_and_earlier_ones(num_channels):
  dep = _masked_layer_dependencies("B", num_channels)
  assert not np.any(np.triu(dep, k=1)), "output t must not depend on input after t"
  assert np.all(np.diag(dep)), "mask B keeps the connection to the current sub-pixel"


@pytest.mark.parametrize("num_channels,features,num_classes", [(1, 8, 0), (3, 12, 0), (3, 12, 4)])
def test_network_is_causal_and_has_no_blind_spot(num_channels, features, num_classes):
  cfg = PixelCNNConfig(shape=(5, 5, num_channels), num_levels=4, features=features, num_layers=4,
                       first_kernel=3, kernel=3, head_features=24, num_classes=num_classes)
  model = PixelCNN(cfg)
  label = jnp.array([2]) if num_classes else None
  params = model.init(jax.random.key(1), jnp.zeros((1, *cfg.shape), jnp.int32), False, label)
  fn = lambda x: model.apply(params, x, False, label, method=PixelCNN.logits_from_scaled).sum(-1)
  dep = _dependencies(fn, cfg.shape)
  assert not np.any(np.triu(dep)), "logits at t depend on sub-pixels at or after t"
  # Four 3x3 layers reach every earlier sub-pixel of a 5x5 image: the vertical stack removes the
  # blind spot that a stack of masked convolutions alone leaves to the upper right.
  assert np.all(np.tril(dep, k=-1) == np.tril(np.ones_like(dep), k=-1))


def test_a_labels_bias_is_its_table_row_under_bfloat16_compute():
  """The class-conditional gates' label bias is a lookup by a one-hot product: exact in bfloat16 too."""
  cfg = PixelCNNConfig(shape=(4, 4, 1), num_levels=4, features=8, num_layers=2, first_kernel=3, kernel=3,
                       head_features=8, num_classes=3, compute_dtype="bfloat16")
  model, label = PixelCNN(cfg), jnp.array([2])
  params = model.init(jax.random.key(1), jnp.zeros((1, *cfg.shape), jnp.int32), False, label)
  params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(2), p.shape), params)
  _, found = model.apply(params, jnp.zeros((1, *cfg.shape), jnp.int32), False, label,
                         capture_intermediates=lambda module, _: "label_to" in (module.name or ""),
                         mutable=["intermediates"])
  block = params["params"]["block_1"]["label_to_vertical"]
  np.testing.assert_array_equal(found["intermediates"]["block_1"]["label_to_vertical"]["__call__"][0],
                                block["kernel"][2:3] + block["bias"])


def _all_images(shape, levels):
  return jnp.asarray(list(itertools.product(range(levels), repeat=int(np.prod(shape)))),
                     jnp.int32).reshape(-1, *shape)


def _log_probs(model, params, images, label=None, temperature=1.0):
  logits = model.apply(params, images, False, None if label is None else jnp.full(images.shape[:1], label))
  log_p = jax.nn.log_softmax(logits / temperature, axis=-1)
  picked = jnp.take_along_axis(log_p, images[..., None], axis=-1)[..., 0]
  return picked.reshape(images.shape[0], -1).sum(-1)


@pytest.mark.parametrize("shape,num_classes", [((2, 2, 1), 0), ((1, 2, 2), 0), ((1, 2, 2), 3)])
def test_probabilities_of_all_images_sum_to_one(shape, num_classes):
  cfg = PixelCNNConfig(shape=shape, num_levels=3, features=4, num_layers=2, first_kernel=3, kernel=3,
                       head_features=8, num_classes=num_classes)
  model = PixelCNN(cfg)
  labels = list(range(num_classes)) or [None]
  params = jax.jit(model.init, static_argnums=2)(jax.random.key(2), jnp.zeros((1, *shape), jnp.int32), False,
                                                  None if labels[0] is None else jnp.zeros((1,), jnp.int32))
  params = jax.tree.map(lambda p: 3.0 * p, params)  # a far-from-uniform distribution
  images = _all_images(shape, 3)
  log_ps = [jax.jit(lambda p, x: _log_probs(model, p, x, label))(params, images) for label in labels]
  for log_p in log_ps:
    assert float(jnp.sum(jnp.exp(log_p))) == pytest.approx(1.0, abs=1e-5)
    assert float(jnp.max(log_p) - jnp.min(log_p)) > 1.0
  for a, b in itertools.combinations(log_ps, 2):  # each label its own distribution p(x | label)
    assert float(jnp.max(jnp.abs(jnp.exp(a) - jnp.exp(b)))) > 0.01


@pytest.mark.parametrize("shape,init_key,temperature", [((2, 2, 1), 3, 1.0), ((1, 2, 2), 5, 1.0),
                                                       ((1, 2, 2), 5, 0.5)])
def test_raster_sampling_draws_from_the_model(shape, init_key, temperature):
  """Sample frequencies against the exact law: the product of the model's conditionals (at logits /
  temperature) in raster order, pixel by pixel and channel by channel within a pixel."""
  cfg = PixelCNNConfig(shape=shape, num_levels=2, features=4, num_layers=2, first_kernel=3, kernel=3,
                       head_features=8)
  model = PixelCNN(cfg)
  params = model.init(jax.random.key(init_key), jnp.zeros((1, *shape), jnp.int32))
  params = jax.tree.map(lambda p: 3.0 * p, params)
  images = _all_images(shape, 2)
  if shape[-1] > 1:  # the channel order within a pixel shows: pixel (0, 1)'s first channel depends on
    # pixel (0, 0)'s second, which a channel-by-channel sweep over the image would not have drawn yet
    p_first = jax.nn.softmax(model.apply(params, images)[:, 0, 1, 0], axis=-1)[:, 1]
    seen = (images[:, 0, 0, 0] == 0)
    given = lambda v: p_first[seen & (images[:, 0, 0, 1] == v)][0]
    assert abs(float(given(0) - given(1))) > 0.1
  probs = np.exp(np.asarray(_log_probs(model, params, images, temperature=temperature)))
  n = 20_000
  samples = np.asarray(jax.jit(lambda k: model.apply(params, k, n, temperature,
                                                     method=PixelCNN.sample))(jax.random.key(4)))
  codes = samples.reshape(n, -1) @ (2 ** np.arange(3, -1, -1))
  freq = np.bincount(codes, minlength=16) / n
  # Images enumerate in the same binary order; 5 standard errors per cell.
  np.testing.assert_array_less(np.abs(freq - probs), 5 * np.sqrt(probs * (1 - probs) / n) + 1e-3)
