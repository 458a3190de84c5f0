"""Minibatch OT coupling for flow matching, against independent computations: the Sinkhorn plan's cost and
marginals against scipy's exact assignment (the OT plan of two equal uniform batches), padded rows left
out, and, for Gaussian data, coupled pairs that follow the closed-form optimal transport map
x0 = mu + Sigma^(1/2) eps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import linalg, optimize

from gm_jax import data as data_lib
from gm_jax.diffusion import coupling
from gm_jax.tasks import diffusion
from tests.conftest import load_config


def _batches(batch=32, dim=6):
  x = jax.random.normal(jax.random.key(0), (batch, dim)) * 1.5 + 0.5
  eps = jax.random.normal(jax.random.key(1), (batch, dim))
  cost = np.asarray(((x[:, None] - eps[None]) ** 2).sum(-1), np.float64)
  return x, eps, cost


@pytest.mark.parametrize("num_real", [32, 27])
def test_the_plan_is_the_exact_assignment_as_epsilon_shrinks(num_real):
  x, eps, cost = _batches()
  mask = (np.arange(32) < num_real).astype(np.float32)
  plan = np.asarray(jax.jit(coupling.ot_plan, static_argnums=3)(x, eps, jnp.asarray(mask / num_real), 1e-3))
  rows, cols = optimize.linear_sum_assignment(cost[:num_real, :num_real])
  exact = cost[rows, cols].mean()
  assert (plan * cost).sum() == pytest.approx(exact, rel=1e-3)
  assert (plan * cost).sum() < 0.9 * cost[:num_real, :num_real].mean()  # far from independent pairing
  np.testing.assert_allclose(plan.sum(1), mask / num_real, atol=1e-3)
  np.testing.assert_allclose(plan.sum(0), mask / num_real, atol=1e-3)
  assert np.all(plan[num_real:] == 0) and np.all(plan[:, num_real:] == 0)


@pytest.mark.parametrize("grouped", [False, True])
def test_padded_rows_do_not_change_the_plan_of_the_real_ones(grouped):
  """The cost's scale, which epsilon is relative to, is its mean over the real rows: padded rows far off
  (here at +10) would raise the mean many times over and blur the plan (an L1 gap of 0.8-0.9 to the real
  rows' own plan at this epsilon): the plan would depend on what the padding holds."""
  x, eps, _ = _batches()
  real = np.arange(32) < 20
  x_padded, eps_padded = (jnp.where(real[:, None], a, 10.0) for a in (x, eps))
  groups = jnp.asarray(np.arange(32) % 2) if grouped else None
  plan_of = jax.jit(coupling.ot_plan, static_argnums=3)
  padded = np.asarray(plan_of(x_padded, eps_padded, jnp.asarray(real / 20.0), 0.01, groups))
  alone = np.asarray(plan_of(x[:20], eps[:20], jnp.full(20, 1 / 20), 0.01,
                             None if groups is None else groups[:20]))
  assert np.abs(padded[:20, :20] - alone).sum() < 1e-3
  assert np.all(padded[20:] == 0) and np.all(padded[:, 20:] == 0)


def test_coupled_noise_pairs_rows_by_the_plan_and_leaves_padding_alone():
  x, eps, cost = _batches()
  mask = jnp.asarray((np.arange(32) < 27).astype(np.float32))
  draw = jax.jit(lambda k: coupling.ot_coupled_noise(k, x, eps, mask, 1e-3))
  chosen = []
  for seed in range(8):
    out = np.asarray(draw(jax.random.key(seed)))
    matches = np.all(np.isclose(out[:, None], np.asarray(eps)[None]), axis=-1)  # (B, B): which eps row
    assert np.all(matches.sum(1) == 1)
    chosen.append(matches.argmax(1))
  chosen = np.stack(chosen)
  np.testing.assert_array_equal(chosen[:, 27:], np.broadcast_to(np.arange(27, 32), (8, 5)))
  assert np.all(chosen[:, :27] < 27)  # real examples draw only real examples' noise
  rows, cols = optimize.linear_sum_assignment(cost[:27, :27])
  paired_cost = cost[np.arange(27)[None], chosen[:, :27]].mean()
  assert paired_cost == pytest.approx(cost[rows, cols].mean(), rel=0.02)


def test_labelled_rows_draw_noise_of_their_own_label():
  """Two classes at -2 and +2: one plan over the batch hands each class the noise nearest its data (means
  near -0.55 and +0.55), while sampling starts each label from N(0, I). Coupled within labels, each
  example draws a noise row of its own label (noise row j belongs to example j's label)."""
  n = 512
  labels = jnp.arange(n) % 2
  x0 = jnp.where(labels[:, None] == 0, -2.0, 2.0) + 0.3 * jax.random.normal(jax.random.key(5), (n, 2))
  eps = jax.random.normal(jax.random.key(6), (n, 2))
  for given, same_label in ((None, False), (labels, True)):
    out = np.asarray(coupling.ot_coupled_noise(jax.random.key(7), x0, eps, jnp.ones(n), 0.01, given))
    drawn = np.all(np.isclose(out[:, None], np.asarray(eps)[None]), axis=-1).argmax(1)
    assert np.all(labels[drawn] == labels) == same_label
  class_means = [out[np.asarray(labels) == c].mean(0) for c in (0, 1)]
  assert np.abs(class_means).max() < 0.15, class_means  # each class's noise: half of a prior draw


def test_coupled_gaussian_pairs_follow_the_closed_form_transport_map():
  """Between N(0, I) and N(mu, Sigma) the optimal map is eps -> mu + Sigma^(1/2) eps; a large minibatch's
  coupling lands near it, while independent pairs are far from it."""
  mu, sigma = np.array([1.0, -0.5]), np.array([[1.0, 0.6], [0.6, 0.5]])
  root = linalg.sqrtm(sigma).real
  n = 1024
  eps = jax.random.normal(jax.random.key(2), (n, 2))
  x0 = mu + jax.random.normal(jax.random.key(3), (n, 2)) @ np.linalg.cholesky(sigma).T
  paired = coupling.ot_coupled_noise(jax.random.key(4), x0, eps, jnp.ones(n), 0.01)
  residual = lambda noise: float(np.mean(np.sum((np.asarray(x0) - mu - np.asarray(noise) @ root.T) ** 2, -1)))
  assert residual(paired) < 0.1 * residual(eps), (residual(paired), residual(eps))


def test_flow_matching_task_trains_with_the_ot_coupling_and_refuses_it_elsewhere(monkeypatch):
  config = load_config("toy2d_flow_matching", "tiny")
  dataset = data_lib.load_dataset(config.data)
  batch = {**dataset.train[np.arange(64)], "index": np.arange(64), "mask": np.ones(64, np.float32)}
  batch["mask"][-4:] = 0.0  # padding rows keep their own noise
  seen = {}
  flow_matching_loss = diffusion.objectives.flow_matching_loss

  def recorded(d, x, key, couple, antithetic):
    seen.update(x=x, couple=couple)
    return flow_matching_loss(d, x, key, couple, antithetic)

  monkeypatch.setattr(diffusion.objectives, "flow_matching_loss", recorded)
  losses = {}
  for kind in ("independent", "ot"):
    config.objective.coupling = kind
    task = diffusion.build(config, dataset)
    params = task.init(jax.random.key(0), batch)
    losses[kind] = float(task.updates[0].loss_fn({"model": params["model"]["params"]}, {}, batch,
                                                 jax.random.key(1))[0])
  assert np.isfinite(losses["ot"]) and losses["ot"] != losses["independent"]
  # The task pairs its data (in model space: the points themselves) with the noise by the batch's plan.
  np.testing.assert_array_equal(seen["x"], batch["x"])
  eps = jax.random.normal(jax.random.key(2), batch["x"].shape)
  np.testing.assert_array_equal(
      seen["couple"](jax.random.key(3), seen["x"], eps),
      coupling.ot_coupled_noise(jax.random.key(3), batch["x"], eps, batch["mask"],
                                config.objective.ot_epsilon))
  config = load_config("toy2d_ddpm", "tiny")
  config.objective.coupling = "ot"
  with pytest.raises(ValueError, match="set objective.loss='flow_matching' or "
                                       "objective.coupling='independent'"):
    diffusion.build(config, dataset)


def test_a_conditional_task_couples_within_the_labels_its_network_sees(monkeypatch):
  config = load_config("digits_flow_matching_conditional", "tiny")
  config.objective.update(coupling="ot", label_dropout=0.5)
  dataset = data_lib.load_dataset(config.data)
  batch = {**dataset.train[np.arange(16)], "index": np.arange(16), "mask": np.ones(16, np.float32)}
  seen = {}
  record = lambda key, x0, eps, mask, epsilon, labels_B: seen.update(labels=labels_B) or eps
  monkeypatch.setattr(coupling, "ot_coupled_noise", record)
  task = diffusion.build(config, dataset)
  params = task.init(jax.random.key(0), batch)
  task.updates[0].loss_fn({"model": params["model"]["params"]}, {}, batch, jax.random.key(1))
  labels, none = np.asarray(seen["labels"]), config.model.num_classes
  kept = labels != none  # label dropout's 'none' is a label of its own
  assert 0 < kept.sum() < 16 and np.all(labels[kept] == batch["label"][kept])
