"""The DDPM U-Net with two resolutions and attention (the configs' `:tiny` sizes use one): shapes, the
attention block against NumPy, and what each prediction may depend on."""

import jax
import jax.numpy as jnp
import numpy as np

from scipy import special

from gm_jax.models.unet import AttentionBlock, UNet, UNetConfig


def test_each_prediction_depends_on_its_whole_image_and_time_and_on_no_other_example():
  net = UNet(UNetConfig(channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(4,),
                        dropout=0.0, num_groups=4))
  x, t = jax.random.normal(jax.random.key(0), (2, 8, 8, 3)), jnp.array([0.3, 0.7])
  # Random weights everywhere (the zero-initialized output layers would make a fresh network constant).
  # Drawn in NumPy: a jitted init compiles one random stream per parameter, which takes tens of seconds.
  rng = np.random.default_rng(2)
  shapes = jax.eval_shape(net.init, jax.random.key(1), x, t)["params"]
  params = jax.tree.map(lambda p: jnp.asarray(0.3 * rng.normal(size=p.shape), jnp.float32), shapes)
  apply = lambda x, t: net.apply({"params": params}, x, t)
  assert jax.eval_shape(apply, x, t).shape == x.shape
  # d out[0, 0, 0, :] / d x: every pixel of example 0 (the attention is global), none of example 1.
  jac = jax.jit(jax.jacobian(lambda x: apply(x, t)[0, 0, 0]))(x)
  own, other = np.abs(jac[:, 0]).sum(axis=(0, -1)), np.abs(jac[:, 1])
  assert np.all(own > 0) and np.all(other == 0)
  dt = jax.jit(jax.jacfwd(lambda t: apply(x, t)))(t)
  assert np.abs(dt[0, ..., 0]).sum() > 0 and np.all(dt[0, ..., 1] == 0)


def test_attention_block_is_the_input_plus_softmax_attention_over_the_keys():
  """GroupNorm, one projection to q, k, v, softmax(q k^T / sqrt(C)) over the keys, an output projection
  and the residual, written out in NumPy (a softmax over the queries passes the dependency test above)."""
  block = AttentionBlock(num_groups=2)
  x = np.random.default_rng(0).normal(size=(2, 4, 4, 4)).astype(np.float32)
  rng = np.random.default_rng(1)
  p = jax.tree.map(lambda s: (0.5 * rng.normal(size=s.shape)).astype(np.float32),
                   jax.eval_shape(block.init, jax.random.key(0), x)["params"])
  g = x.reshape(2, 16, 2, 2)  # 2 groups of 2 channels over all 16 positions
  y = ((g - g.mean((1, 3), keepdims=True)) / np.sqrt(g.var((1, 3), keepdims=True) + 1e-6)).reshape(2, 16, 4)
  y = y * p["GroupNorm_0"]["scale"] + p["GroupNorm_0"]["bias"]
  q, k, v = np.split(y @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"], 3, axis=-1)
  weights = special.softmax(q @ k.transpose(0, 2, 1) / np.sqrt(4), axis=-1)
  out = (weights @ v) @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]
  np.testing.assert_allclose(block.apply({"params": p}, x), x + out.reshape(x.shape), rtol=1e-4, atol=1e-4)


def _stacked_like(unscanned: dict, unscanned_order, scanned_order: dict) -> dict:
  """The unscanned network's parameters in the scanned network's layout: both create their blocks in
  the same order, a scan holding a run of consecutive ResBlocks (each with its AttentionBlock).
  `*_order`: the networks' parameter names in the order they were created (a dict of the step's names
  for each scan), which pytree operations do not keep."""
  blocks = iter([name for name in unscanned_order if name.startswith(("ResBlock", "Attention"))])
  out = {}
  for name, inner in scanned_order.items():
    if not name.startswith(("ResBlock", "Attention", "ScanUNetStep")):
      out[name] = unscanned[name]
    elif not name.startswith("ScanUNetStep"):
      out[name] = unscanned[next(blocks)]
    else:
      run = inner["run"]
      steps = [{key: unscanned[next(blocks)] for key in inner["names"]} for _ in range(run)]
      out[name] = jax.tree.map(lambda *a: jnp.stack(a), *steps)
  assert next(blocks, None) is None
  return out


def _creation_order(net, x, t):
  order = {}

  def init(key):  # read while tracing, where the dict is in creation order (a pytree output is sorted)
    params = net.init(key, x, t)["params"]
    # A scan's step (its dict sorted by name) creates its ResBlock before its AttentionBlock.
    order.update({name: {"names": sorted(tree, key=lambda n: not n.startswith("ResBlock")),
                         "run": jax.tree.leaves(tree)[0].shape[0]} if name.startswith("Scan") else None
                  for name, tree in params.items()})

  jax.eval_shape(init, jax.random.key(1))
  return order


def test_scanned_blocks_compute_the_unscanned_network():
  # Two resolutions: single blocks (where the channels change) and runs, on both paths, with attention
  # inside the runs at 4x4.
  size = dict(channels=8, channel_mults=(1, 2), num_res_blocks=2, attention_resolutions=(4,), dropout=0.0,
              num_groups=2)
  plain, scanned = UNet(UNetConfig(**size)), UNet(UNetConfig(**size, scan_blocks=True))
  x, t = jax.random.normal(jax.random.key(0), (2, 8, 8, 3)), jnp.array([0.3, 0.7])
  rng = np.random.default_rng(2)
  shapes = jax.eval_shape(plain.init, jax.random.key(1), x, t)["params"]
  params = jax.tree.map(lambda p: jnp.asarray(0.3 * rng.normal(size=p.shape), jnp.float32), shapes)
  scanned_order = _creation_order(scanned, x, t)
  assert any(name.startswith("ScanUNetStep") for name in scanned_order)
  stacked = _stacked_like(params, _creation_order(plain, x, t), scanned_order)
  scanned_shapes = jax.eval_shape(scanned.init, jax.random.key(1), x, t)["params"]
  assert jax.tree.map(lambda a: a.shape, stacked) == jax.tree.map(lambda a: a.shape, scanned_shapes)
  np.testing.assert_allclose(jax.jit(scanned.apply)({"params": stacked}, x, t),
                             jax.jit(plain.apply)({"params": params}, x, t), rtol=1e-5, atol=1e-5)
