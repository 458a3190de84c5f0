"""PixelRNN: no output depends on its own or later sub-pixels, the Diagonal BiLSTM sees every earlier one,
skewing round-trips, training reaches the known entropy of Markov-structured images, and samples follow
the network's law."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gm_jax.data.markov import MarkovChain
from gm_jax.models import pixelrnn
from gm_jax.models.pixelrnn import PixelRNN, PixelRNNConfig
from tests.conftest import RUNTIME_BOUND
from tests.models.test_pixelcnn import _all_images, _log_probs


def test_skew_unskew_round_trip():
  x = jax.random.normal(jax.random.key(0), (2, 3, 5, 4))
  skewed = pixelrnn.skew(x)
  assert skewed.shape == (2, 3, 7, 4)
  np.testing.assert_array_equal(pixelrnn.unskew(skewed, 5), x)
  # Row i starts at column i; the diagonal i + j = s is column s.
  np.testing.assert_array_equal(skewed[:, 2, 2], x[:, 2, 0])
  np.testing.assert_array_equal(skewed[:, 1, 0], 0.0)
  np.testing.assert_array_equal(skewed[:, 0, 5:], 0.0)


def _dependencies(fn, x_shape, num_inputs=4):
  """Boolean (out, in) matrix over raster-ordered sub-pixels: does output t depend on input s?"""
  size = int(np.prod(x_shape))
  jac = jax.jit(jax.vmap(jax.jacrev(lambda v: fn(v[None])[0])))
  x = jax.random.uniform(jax.random.key(0), (num_inputs, *x_shape), minval=-1, maxval=1)
  return np.any(np.abs(np.asarray(jac(x))).reshape(num_inputs, size, size) > 0, axis=0)


def _diagonal_field(h, w, c, first_kernel):
  """Sub-pixels the Diagonal BiLSTM sees: every earlier one except the last channel of pixel (i - 1, W - 1)
  from pixels (i, j) with j + first_kernel // 2 < W - 1. That sub-pixel enters no feature of row i - 1
  (masks A/B keep it out of its own position, and it is the row's last), the right-to-left state
  reaches row i only from row i - 1, and only the first convolution reaches it from row i."""
  size = h * w * c
  field = np.tril(np.ones((size, size), bool), k=-1)
  for i in range(1, h):
    for j in range(w - 1 - first_kernel // 2):
      out = slice((i * w + j) * c, (i * w + j + 1) * c)
      field[out, ((i - 1) * w + w) * c - 1] = False
  return field


@pytest.mark.parametrize("architecture,num_channels", [("row_lstm", 3), ("diagonal_bilstm", 1),
                                                       ("diagonal_bilstm", 3)])
def test_network_is_causal(architecture, num_channels):
  h = w = 5
  cfg = PixelRNNConfig(shape=(h, w, num_channels), num_levels=4, architecture=architecture,
                       features=6 * num_channels, hidden=3 * num_channels, num_layers=2, first_kernel=3,
                       head_features=6 * num_channels)
  model = PixelRNN(cfg)
  params = jax.jit(model.init)(jax.random.key(1), jnp.zeros((1, *cfg.shape), jnp.int32))
  fn = lambda x: model.apply(params, x, method=PixelRNN.logits_from_scaled).sum(-1)
  dep = _dependencies(fn, cfg.shape)
  assert not np.any(np.triu(dep)), "logits at t depend on sub-pixels at or after t"
  if architecture == "diagonal_bilstm":
    np.testing.assert_array_equal(dep, _diagonal_field(h, w, num_channels, cfg.first_kernel))
  else:
    # The Row LSTM's triangular field: the pixel to the left and the three above are seen (its input
    # convolution alone sees them), and through the state-to-state recurrence the whole row two above,
    # out to (0, 4), which no 3 x 3 input convolution reaches (a Row LSTM without recurrence passed).
    row = w * num_channels
    t = 2 * row + 2 * num_channels  # pixel (2, 2), first channel
    for earlier in (t - row - num_channels, t - row, t - row + num_channels, t - num_channels):
      assert dep[t, earlier]
    assert all(dep[t, col * num_channels] for col in range(w))


def _markov_rows(chain: MarkovChain, n: int, shape, seed: int) -> np.ndarray:
  """Images whose rows are independent runs of the chain from its stationary distribution."""
  h, w = shape
  rng = np.random.default_rng(seed)
  cumulative = np.cumsum(chain.transition, axis=1)
  rows = np.empty((n * h, w), np.int32)
  rows[:, 0] = rng.choice(len(chain.transition), size=n * h, p=chain.stationary)
  for j in range(1, w):
    u = rng.random(n * h)[:, None]
    rows[:, j] = np.minimum(np.sum(u > cumulative[rows[:, j - 1]], axis=1), len(chain.transition) - 1)
  return rows.reshape(n, h, w, 1)


def _true_nll(chain: MarkovChain, x: np.ndarray) -> np.ndarray:
  """-log p(x) per image under the chain that generated the rows."""
  rows = x[..., 0].reshape(-1, x.shape[2])
  logp = np.log(chain.stationary[rows[:, 0]]) + np.log(chain.transition[rows[:, :-1], rows[:, 1:]]).sum(-1)
  return -logp.reshape(x.shape[0], -1).sum(-1)


@pytest.mark.parametrize("architecture", ["row_lstm", "diagonal_bilstm"])
def test_bits_per_dim_reach_the_entropy_of_markov_images(architecture):
  levels, shape = 3, (3, 4)
  chain = MarkovChain(np.array([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]]))
  train = _markov_rows(chain, 20_000, shape, seed=0)
  test = _markov_rows(chain, 512, shape, seed=1)
  num_dims = shape[0] * shape[1]
  entropy = shape[0] * (-np.sum(chain.stationary * np.log(chain.stationary))
                        + (shape[1] - 1) * chain.entropy_rate)
  cfg = PixelRNNConfig(shape=(*shape, 1), num_levels=levels, architecture=architecture, features=16,
                       hidden=16, num_layers=1, first_kernel=3, head_features=32)
  model = PixelRNN(cfg)

  def nll(params, x):
    logits = model.apply(params, x)
    return -jnp.sum(jnp.take_along_axis(jax.nn.log_softmax(logits), x[..., None], -1), axis=(1, 2, 3, 4))

  params = model.init(jax.random.key(0), jnp.asarray(train[:1]))
  tx = optax.adam(1e-2)
  opt_state = tx.init(params)

  @functools.partial(jax.jit, compiler_options=RUNTIME_BOUND)
  def step(params, opt_state, x):
    loss, grads = jax.value_and_grad(lambda p: jnp.mean(nll(p, x)))(params)
    updates, opt_state = tx.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss

  rng = np.random.default_rng(0)
  for _ in range(200):
    params, opt_state, _ = step(params, opt_state, jnp.asarray(train[rng.integers(0, len(train), 128)]))
  model_bpd = float(jnp.mean(nll(params, jnp.asarray(test)))) / (num_dims * math.log(2))
  true_bpd = float(np.mean(_true_nll(chain, test))) / (num_dims * math.log(2))
  assert abs(true_bpd - entropy / (num_dims * math.log(2))) < 0.05  # the test split is typical
  assert model_bpd == pytest.approx(true_bpd, abs=0.015)


@pytest.mark.parametrize("architecture", ["row_lstm", "diagonal_bilstm"])
def test_sampling_draws_from_the_model(architecture):
  """Sample frequencies of 1 x 2 images of 2 channels and 2 levels against the exact law, the product of the
  network's conditionals in raster order."""
  shape = (1, 2, 2)
  cfg = PixelRNNConfig(shape=shape, num_levels=2, architecture=architecture, features=4, hidden=4,
                       num_layers=1, first_kernel=3, head_features=4)
  model = PixelRNN(cfg)
  params = model.init(jax.random.key(5), jnp.zeros((1, *shape), jnp.int32))
  params = jax.tree.map(lambda p: 3.0 * p, params)  # far from uniform
  images = _all_images(shape, 2)
  probs = np.exp(np.asarray(_log_probs(model, params, images)))
  assert probs.max() - probs.min() > 0.1
  n = 20_000
  draw = jax.jit(lambda k: model.apply(params, k, n, method=PixelRNN.sample))
  samples = np.asarray(draw(jax.random.key(4)))
  freq = np.bincount(samples.reshape(n, -1) @ (2 ** np.arange(3, -1, -1)), minlength=16) / n
  np.testing.assert_array_less(np.abs(freq - probs), 5 * np.sqrt(probs * (1 - probs) / n) + 1e-3)
