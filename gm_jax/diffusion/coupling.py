"""Minibatch optimal-transport coupling of data and noise for flow matching (Tong et al. 2024, OT-CFM;
Pooladian et al. 2023): each example's noise is drawn from the entropic OT plan between the batch's data and
its noise under the squared distance, instead of independently. The pairs' straight paths then cross less,
so the learned velocity field is straighter and few-step samplers lose less to it.

The plan is Sinkhorn's (ott-jax) with the cost scaled by its mean (over the batch's real rows) and `epsilon`
the entropic regularization relative to that scale; each data row draws one noise row from its row of the
plan, so every example keeps its data and the noise marginal is the batch's in expectation. A
class-conditional model couples within each label (the labels its network sees; 'none' is one more): noise
row j belongs to example j's label and the plan pairs no two rows of different labels, so each label's noise
is still a draw of the prior that sampling with that label starts from (one plan over the whole batch pulls
each class's noise towards its data: two classes at -2 and +2 trained on noise of mean -0.55 and +0.55). The
coupling is a function of the whole global batch (not of each example alone): it is computed on the global
arrays, so a run still does not depend on the number of devices, but it does depend on the batch size.

Reflow's coupling (`reflow_noise`) is fixed instead: each example's noise is the start its first flow's
ODE carried it from.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gm_jax.diffusion.processes import expand


SEPARATE = 1e4  # the scaled cost between rows of different groups: exp(-SEPARATE / epsilon) is 0


def mean_cost(cost_BB, weights_B) -> jax.Array:
  """The mean of the cost over the pairs of rows of positive weight: padded rows (weight 0) must not set
  the scale that `epsilon` is relative to. Over a batch without padding it is the plain mean, as ott's
  scale_cost='mean' takes it."""
  real = weights_B > 0
  pairs = real[:, None] & real[None, :]
  over_real = jnp.sum(jnp.where(pairs, cost_BB, 0.0)) / jnp.sum(pairs)
  return jnp.where(jnp.all(real), jnp.mean(cost_BB), over_real)


def ot_plan(x_BD, y_BD, weights_B, epsilon: float, groups_B=None) -> jax.Array:
  """(B, B) entropic OT plan between the rows of x and y, both weighted by `weights` (summing to 1); with
  `groups`, x's row i and y's row j are paired only when groups[i] == groups[j]. The cost is scaled by
  its mean over the rows of positive weight."""
  # Imported here: ott takes seconds to import, which every process would pay for a rarely used option.
  from ott.geometry import geometry as geometry_lib
  from ott.geometry import pointcloud
  from ott.problems.linear import linear_problem
  from ott.solvers.linear import acceleration, sinkhorn

  scale = mean_cost(pointcloud.PointCloud(x_BD, y_BD).cost_matrix, weights_B)
  geometry = pointcloud.PointCloud(x_BD, y_BD, scale_cost=scale, epsilon=epsilon)
  if groups_B is not None:
    cost = geometry.cost_matrix  # scaled by its mean, as above
    apart = groups_B[:, None] != groups_B[None, :]
    geometry = geometry_lib.Geometry(cost_matrix=jnp.where(apart, SEPARATE, cost), epsilon=epsilon)
  problem = linear_problem.LinearProblem(geometry, weights_B, weights_B)
  # Adaptive momentum (over-relaxation after 20 plain iterations) cuts the iterations 3-fold at small epsilon.
  solver = sinkhorn.Sinkhorn(implicit_diff=None, momentum=acceleration.Momentum(start=20))
  return solver(problem).matrix


def ot_coupled_noise(key, x0, eps, mask_B, epsilon: float = 0.01, labels_B=None) -> jax.Array:
  """eps re-paired with x0 by the minibatch OT plan: row i of the result is a row of eps drawn from plan
  row i, of the same label when `labels` are given. Rows with mask 0 (padding) take no part in the plan
  and keep their own noise."""
  batch = x0.shape[0]
  flat_x, flat_eps = (jax.lax.stop_gradient(a.reshape(batch, -1)) for a in (x0, eps))
  weights = mask_B / jnp.sum(mask_B)
  plan = ot_plan(flat_x, flat_eps, weights, epsilon, labels_B)
  log_rows = jnp.where(plan > 0, jnp.log(jnp.where(plan > 0, plan, 1.0)), -jnp.inf)
  drawn = jax.random.categorical(key, jnp.where(mask_B[:, None] > 0, log_rows, 0.0), axis=1)
  return eps[jnp.where(mask_B > 0, drawn, jnp.arange(batch))]


def reflow_noise(process, x0, start) -> jax.Array:
  """Reflow's coupling: the eps whose path x_t = alpha(t) x0 + sigma(t) eps ends at `start` at t = 1, where
  `start` is the point of the prior that the first flow's ODE carried to x0. A start is a draw of the
  prior, N(0, prior_std^2 I), not of eps's N(0, I): taken as eps itself, a VE or EDM path would end
  sigma_max times too far out (the linear interpolant, alpha(1) = 0 and sigma(1) = 1, is unchanged)."""
  t1 = jnp.ones(x0.shape[:1], jnp.float32)
  return (start - expand(process.alpha(t1), x0) * x0) / expand(process.sigma(t1), x0)
