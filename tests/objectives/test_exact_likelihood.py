"""Exact-likelihood objectives: next-token cross-entropy and the masked (sum, count) means of -log p(x)."""

import jax.numpy as jnp
import numpy as np
from scipy import special

from gm_jax.objectives import cross_entropy, exact_nll, sums


def test_token_nll_and_its_sums_over_real_examples():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(3, 4, 7)) * 4.0
  targets = rng.integers(0, 7, size=(3, 4))
  expected = -np.take_along_axis(special.log_softmax(logits, -1), targets[..., None], -1)[..., 0]
  nll = cross_entropy.token_nll(jnp.asarray(logits, jnp.bfloat16), jnp.asarray(targets))
  assert nll.dtype == jnp.float32  # low-precision logits are read in float32
  bf16_logits = np.asarray(jnp.asarray(logits, jnp.bfloat16), np.float64)
  np.testing.assert_allclose(
      nll, -np.take_along_axis(special.log_softmax(bf16_logits, -1), targets[..., None], -1)[..., 0],
      rtol=1e-5, atol=1e-5)
  nll = cross_entropy.token_nll(jnp.asarray(logits, jnp.float32), jnp.asarray(targets))
  np.testing.assert_allclose(nll, expected, rtol=1e-5, atol=1e-5)
  total, count = cross_entropy.sums(nll, jnp.array([1.0, 0.0, 1.0]))  # the second example is padding
  np.testing.assert_allclose(total, expected[[0, 2]].sum(), rtol=1e-5)
  assert float(count) == 8.0


def test_exact_nll_loss_and_eval_average_over_real_examples():
  log_prob = lambda params, x: -params["scale"] * jnp.sum(x**2, axis=-1)
  batch = {"x": jnp.array([[1.0, 2.0], [0.5, 0.0], [3.0, 3.0]]), "mask": jnp.array([1.0, 1.0, 0.0])}
  params = {"model": {"scale": jnp.float32(0.5)}}
  loss, (metrics, state) = exact_nll.make_loss(log_prob)(params, {}, batch, None)
  assert float(loss) == (2.5 + 0.125) / 2 and state == {}
  assert [float(v) for v in metrics["nll_nats"]] == [2.625, 2.0]
  evaluated = exact_nll.make_eval(log_prob, network="density")({"density": params["model"]}, {}, batch, None)
  assert [float(v) for v in evaluated["nll_nats"]] == [2.625, 2.0]
  assert [float(v) for v in sums.masked_mean(jnp.array([1.0, 2.0, 4.0]),
                                             jnp.array([0.0, 1.0, 1.0]))] == [6.0, 2.0]
