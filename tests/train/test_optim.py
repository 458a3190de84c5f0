import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gm_jax.train.defaults import base_config
from gm_jax.train.optim import make_optimizer, make_schedule


def _cfg(**kw):
  cfg = base_config().optim
  cfg.update({"learning_rate": 1.0, **kw})
  return cfg


def test_warmup_then_cosine_to_end_ratio():
  s = make_schedule(_cfg(schedule="cosine", warmup_steps=10, end_lr_ratio=0.1), num_steps=110)
  assert float(s(0)) == 0.0
  assert float(s(5)) == pytest.approx(0.5)
  assert float(s(10)) == pytest.approx(1.0)
  assert float(s(60)) == pytest.approx(0.1 + 0.9 * 0.5, rel=1e-5)
  assert float(s(110)) == pytest.approx(0.1, rel=1e-5)


def test_linear_decay():
  s = make_schedule(_cfg(schedule="linear"), num_steps=100)
  assert float(s(50)) == pytest.approx(0.5)


def test_piecewise_schedule():
  cfg = _cfg(schedule="piecewise")
  cfg.boundaries = (10, 30)
  cfg.scales = (1.0, 0.5, 0.25)
  s = make_schedule(cfg, num_steps=100)
  assert [float(s(t)) for t in (0, 9, 10, 29, 30, 99)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
  cfg.scales = (1.0, 0.5)
  with pytest.raises(ValueError, match="one more entry"):
    make_schedule(cfg, 100)


def test_adamw_decays_only_matrices():
  tx, _ = make_optimizer(_cfg(name="adamw", learning_rate=0.1, weight_decay=0.5), 10)
  params = {"w": jnp.ones((2, 2)), "b": jnp.ones((2,))}
  zero = {"w": jnp.zeros((2, 2)), "b": jnp.zeros((2,))}
  updates, _ = tx.update(zero, tx.init(params), params)
  assert np.allclose(updates["w"], -0.1 * 0.5) and np.allclose(updates["b"], 0.0)


def test_global_norm_clipping():
  tx, _ = make_optimizer(_cfg(name="rmsprop", grad_clip_norm=1.0, learning_rate=1.0), 10)
  params = {"a": jnp.zeros(4)}
  grads = {"a": jnp.full(4, 10.0)}
  clip = optax.clip_by_global_norm(1.0)
  clipped, _ = clip.update(grads, clip.init(params))
  assert float(optax.global_norm(clipped)) == pytest.approx(1.0)
  updates, _ = tx.update(grads, tx.init(params), params)
  assert np.all(np.isfinite(updates["a"]))


def test_unknown_optimizer_is_a_clear_error():
  with pytest.raises(ValueError, match="unknown optim.name 'sgdd'; use adam, adamw, rmsprop or adagrad"):
    make_optimizer(_cfg(name="sgdd"), 10)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_update_clip_is_adam_until_a_step_exceeds_it(name):
  cfg = _cfg(name=name, learning_rate=0.1, weight_decay=0.01, adam_update_clip=1e6)
  clipped, _ = make_optimizer(cfg, 10)
  cfg.adam_update_clip = 0.0
  plain, _ = make_optimizer(cfg, 10)
  params = {"w": jnp.ones((3, 2)), "b": jnp.ones((2,))}
  grads = [{"w": jnp.full((3, 2), g), "b": jnp.full((2,), -g)} for g in (0.1, 0.3, -0.2)]
  s_clipped, s_plain = clipped.init(params), plain.init(params)
  for g in grads:
    u_clipped, s_clipped = clipped.update(g, s_clipped, params)
    u_plain, s_plain = plain.update(g, s_plain, params)
    np.testing.assert_allclose(u_clipped["w"], u_plain["w"], rtol=1e-6)
    np.testing.assert_allclose(u_clipped["b"], u_plain["b"], rtol=1e-6)


def test_adam_update_clip_bounds_the_step_a_sudden_gradient_takes():
  # Without momentum (b1 = 0) Adam's step is g / sqrt(v): after 20 gradients of 0.01, a gradient of 100
  # steps about 4.6 (v remembers the small ones), far above 1; the clip keeps the update at lr * 1.
  cfg = _cfg(learning_rate=0.1, b1=0.0, adam_update_clip=1.0)
  clipped, _ = make_optimizer(cfg, 10)
  cfg.adam_update_clip = 0.0
  plain, _ = make_optimizer(cfg, 10)
  params = {"a": jnp.zeros(2)}
  s_clipped, s_plain = clipped.init(params), plain.init(params)
  gradients = [0.01] * 20 + [100.0]
  for g in gradients:
    u_clipped, s_clipped = clipped.update({"a": jnp.full(2, g)}, s_clipped, params)
    u_plain, s_plain = plain.update({"a": jnp.full(2, g)}, s_plain, params)
  t = len(gradients)
  v = sum(0.001 * 0.999 ** (t - 1 - i) * g ** 2 for i, g in enumerate(gradients)) / (1 - 0.999 ** t)
  step = 100.0 / (np.sqrt(v) + 1e-8)
  assert step > 4
  np.testing.assert_allclose(u_plain["a"], -0.1 * step, rtol=1e-5)
  np.testing.assert_allclose(u_clipped["a"], -0.1, rtol=1e-6)


def test_adam_update_clip_needs_adam():
  with pytest.raises(ValueError, match=r"optim.adam_update_clip clips Adam's step; with optim.name='rmsprop'"):
    make_optimizer(_cfg(name="rmsprop", adam_update_clip=1.0), 10)
