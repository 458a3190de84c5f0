"""The DDPM U-Net with two resolutions and attention (the configs' `:tiny` sizes use one): shapes, and
what each prediction may depend on."""

import jax
import jax.numpy as jnp
import numpy as np

from gm_jax.models.unet import UNet, UNetConfig


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
