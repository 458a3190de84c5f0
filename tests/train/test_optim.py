import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gm_jax.train.defaults import base_config
from gm_jax.train.optim import make_optimizer, make_optimizers, make_schedule


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


def test_warmup_then_linear_decay_to_end_ratio():
  """Off the midpoint, where a cosine decay (equal to it at the midpoint) differs."""
  s = make_schedule(_cfg(schedule="linear", warmup_steps=10, end_lr_ratio=0.2), num_steps=110)
  assert float(s(5)) == pytest.approx(0.5)
  for k in (0, 25, 75, 100):
    assert float(s(10 + k)) == pytest.approx(1.0 - 0.8 * k / 100, rel=1e-6), k


@pytest.mark.parametrize("warmup", [0, 5])
def test_piecewise_schedule(warmup):
  """The boundaries are train steps, with or without a warmup before them."""
  cfg = _cfg(schedule="piecewise", warmup_steps=warmup)
  cfg.boundaries = (10, 30)
  cfg.scales = (1.0, 0.5, 0.25)
  s = make_schedule(cfg, num_steps=100)
  assert [float(s(t)) for t in (5, 9, 10, 29, 30, 99)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
  if warmup:  # the warmup rises to the first piece's rate, not to learning_rate
    cfg.scales = (0.5, 0.25, 0.1)
    s = make_schedule(cfg, num_steps=100)
    assert [float(s(t)) for t in (0, 2, 5, 9, 10, 30)] == pytest.approx([0.0, 0.2, 0.5, 0.5, 0.25, 0.1])
  cfg.scales = (1.0, 0.5)
  with pytest.raises(ValueError, match="one more entry"):
    make_schedule(cfg, 100)


def test_adamw_decays_only_weight_matrices():
  """The kernels of dense, convolution, MADE and LSTM layers and embedding tables, and nothing else,
  whether a layer is scanned (nn.scan stacks its parameters along a new leading axis) or not: a scanned
  Glow's ActNorm log-scales and learned prior, or a mixture's means, are no weight matrices."""
  tx, _ = make_optimizer(_cfg(name="adamw", learning_rate=0.1, weight_decay=0.5), 10)
  layer = {"Dense_0": {"kernel": (2, 2), "bias": (2,)}, "Conv_0": {"kernel": (3, 3, 2, 2)},
           "MADE": {"kernel_0": (2, 2), "bias_0": (2,)}, "LSTM": {"state_kernel": (2, 2)},
           "embed": {"embedding": (5, 2)}, "pos_embed": (4, 2), "GroupNorm_0": {"scale": (2,), "bias": (2,)},
           "ActNorm": {"log_scale": (2,), "bias": (2,)},
           "LU": {"lower": (2, 2), "upper": (2, 2), "log_s": (2,)},
           "base_mean": (4, 4, 2), "means": (3, 2), "raw_scale": (3, 2, 2)}
  decayed = {"kernel", "kernel_0", "state_kernel", "embedding", "pos_embed"}
  for stack in ((), (3,)):  # unscanned, and scanned over 3 layers
    params = jax.tree.map(lambda shape: jnp.ones(stack + shape), layer,
                          is_leaf=lambda x: isinstance(x, tuple))
    updates, _ = jax.jit(tx.update)(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
    for path, update in jax.tree_util.tree_flatten_with_path(updates)[0]:
      expected = -0.1 * 0.5 if path[-1].key in decayed else 0.0
      np.testing.assert_allclose(update, expected, err_msg=jax.tree_util.keystr(path))


def test_global_norm_clipping():
  """Gradients above the norm reach the optimizer scaled to it and those below it unchanged: two steps
  of the clipped optimizer equal plain RMSProp fed the hand-clipped gradients (the first step alone
  would not tell, RMSProp's first update is nearly scale-free)."""
  cfg = _cfg(name="rmsprop", grad_clip_norm=1.0, learning_rate=1.0)
  tx, _ = make_optimizer(cfg, 10)
  plain = optax.rmsprop(1.0, decay=cfg.decay, eps=cfg.eps, eps_in_sqrt=False, centered=cfg.centered)
  params = {"a": jnp.zeros(4)}
  big, small = {"a": jnp.full(4, 10.0)}, {"a": jnp.full(4, 0.05)}  # norms 20 (clipped) and 0.1 (kept)
  hand_clipped = {"a": big["a"] / 20.0}

  def second_update(tx, first):
    _, state = tx.update(first, tx.init(params), params)
    return tx.update(small, state, params)[0]["a"]

  np.testing.assert_allclose(second_update(tx, big), second_update(plain, hand_clipped), rtol=1e-6)
  assert not np.allclose(second_update(plain, big), second_update(plain, hand_clipped), rtol=1e-2)


@pytest.mark.parametrize("gradient", [1e-2, 1e-5, -1e-7])
def test_rmsprop_step_divides_by_the_root_plus_eps(gradient):
  """PyTorch's RMSprop: nu = (1 - decay) g^2 after one step, update -lr g / (sqrt(nu) + eps); with eps
  under the root a gradient of 1e-5 moved a parameter a tenth as far."""
  cfg = _cfg(name="rmsprop", learning_rate=5e-5, decay=0.99, eps=1e-8)
  tx, _ = make_optimizer(cfg, 10)
  params = {"a": jnp.zeros(1)}
  update = tx.update({"a": jnp.full(1, gradient)}, tx.init(params), params)[0]["a"]
  expected = -5e-5 * gradient / (np.sqrt(0.01 * gradient ** 2) + 1e-8)
  np.testing.assert_allclose(update, [expected], rtol=1e-5)


def test_unknown_optimizer_is_a_clear_error():
  with pytest.raises(ValueError, match="unknown optim.name 'sgdd'; use adam, adamw, rmsprop or adagrad"):
    make_optimizer(_cfg(name="sgdd"), 10)


def test_weight_decay_needs_adamw():
  with pytest.raises(ValueError, match=r"weight_decay=0.1 is applied by adamw only; set optim.name=adamw"):
    make_optimizer(_cfg(name="adam", weight_decay=0.1), 10)


def test_an_optimizer_block_the_config_lacks_is_one_line():
  config = base_config()
  with pytest.raises(ValueError, match=r"network 'critic' is updated with optimizer block 'optim_d', which "
                                       r"the config lacks; add config.optim_d"):
    make_optimizers(config, {"model": "optim", "critic": "optim_d"})
