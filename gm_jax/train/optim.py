"""Optimizers and learning-rate schedules from config, through optax.

config fields (config.optim or a per-network block):
  name: adam | adamw | rmsprop; learning_rate; b1, b2, eps (adam/adamw); weight_decay (adamw; applied to
  weight matrices only when decay_matrices_only: the kernels of dense, convolution and recurrent layers
  and embedding tables, chosen by name); decay, eps, centered (rmsprop);
  schedule: constant | cosine | linear, after `warmup_steps` of linear warmup from 0, decaying to
  learning_rate * end_lr_ratio at `decay_steps` (0 = the run's num_steps); or piecewise: the learning
  rate times scales[i] from step boundaries[i - 1] on (scales has one more entry than boundaries);
  grad_clip_norm (0 = off); weight_clip (0 = off): after every update each parameter is clipped to
  [-weight_clip, weight_clip] (a crude Lipschitz constraint on a critic). name may also be adagrad
  (initial_accumulator).
"""

from __future__ import annotations

import re

import jax
import optax


def make_schedule(cfg, num_steps: int) -> optax.Schedule:
  peak = cfg.learning_rate
  warmup = cfg.warmup_steps
  decay_steps = cfg.decay_steps or num_steps
  end = peak * cfg.end_lr_ratio
  kind = cfg.schedule
  if kind == "constant":
    after = optax.constant_schedule(peak)
  elif kind == "cosine":
    after = optax.cosine_decay_schedule(peak, max(decay_steps - warmup, 1), alpha=end / peak if peak else 0.0)
  elif kind == "linear":
    after = optax.linear_schedule(peak, end, max(decay_steps - warmup, 1))
  elif kind == "piecewise":
    boundaries, scales = list(cfg.boundaries), list(cfg.scales)
    if len(scales) != len(boundaries) + 1:
      raise ValueError(f"optim.scales needs one more entry than optim.boundaries, got {len(scales)} and "
                       f"{len(boundaries)}")
    pieces = [optax.constant_schedule(peak * s) for s in scales]
    after = optax.join_schedules(pieces, [b - warmup for b in boundaries])
  else:
    raise ValueError(f"unknown optim.schedule {kind!r}; use constant, cosine, linear or piecewise")
  if warmup <= 0:
    return after
  start = peak * cfg.scales[0] if kind == "piecewise" else peak  # where the schedule after the warmup begins
  return optax.join_schedules([optax.linear_schedule(0.0, start, warmup), after], [warmup])


# The names of weight matrices: Flax's `kernel` and `embedding`, MADE's `kernel_<layer>`, an LSTM's
# `state_kernel`, a Transformer's `pos_embed`.
_WEIGHT_MATRIX = re.compile(r"(\w+_)?kernel(_\d+)?|(\w+_)?embed(ding)?")


def _weight_matrices(params):
  """Weight decay's mask: the weight matrices, chosen by name rather than by rank, since nn.scan stacks
  a scanned layer's biases, norm scales and log-scales into 2-D arrays. Not decayed: biases, norm
  scales, a flow's log-scales, LU factors and learned prior, a mixture's means and scales."""
  return jax.tree_util.tree_map_with_path(
      lambda path, p: bool(_WEIGHT_MATRIX.fullmatch(str(getattr(path[-1], "key", "")))), params)


def clip_parameters(c: float) -> optax.GradientTransformation:
  """Turns updates into ones that leave every parameter inside [-c, c] after they are applied."""

  def update(updates, state, params):
    if params is None:
      raise ValueError("weight clipping needs the parameters")
    clipped = jax.tree.map(lambda u, p: jax.numpy.clip(p + u, -c, c) - p, updates, params)
    return clipped, state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def unread_fields(cfg) -> dict[str, str]:
  """{field: who reads it} for the fields of one optimizer block that its name and schedule leave unread."""
  name, schedule = cfg.name, cfg.schedule
  readers = {("b1", "b2"): ("adam", "adamw"), ("decay_matrices_only",): ("adamw",),
             ("decay", "centered"): ("rmsprop",), ("initial_accumulator",): ("adagrad",)}
  unread = {field: f"by {' and '.join(names)}" for fields, names in readers.items() if name not in names
            for field in fields}
  if schedule not in ("cosine", "linear"):
    unread.update({field: "by the cosine and linear schedules" for field in ("end_lr_ratio", "decay_steps")})
  if schedule != "piecewise":
    unread.update({field: "by the piecewise schedule" for field in ("boundaries", "scales")})
  return unread


def make_optimizer(cfg, num_steps: int,
                   updates_per_step: int = 1) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """(optimizer, schedule): the schedule counts train steps; a network updated `updates_per_step` times a
  step (a GAN's n_critic critic updates) reads it at update count // updates_per_step, so that its
  warmup, decay and boundaries fall at the same train steps as everyone else's."""
  schedule = make_schedule(cfg, num_steps)
  per_update = schedule if updates_per_step == 1 else lambda count: schedule(count // updates_per_step)
  name = cfg.name
  if cfg.weight_decay and name != "adamw":
    raise ValueError(f"optim.weight_decay={cfg.weight_decay} is applied by adamw only; set optim.name=adamw "
                     f"or optim.weight_decay=0")
  if name == "adam":
    tx = optax.adam(per_update, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
  elif name == "adamw":
    mask = _weight_matrices if cfg.decay_matrices_only else None
    tx = optax.adamw(per_update, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                     weight_decay=cfg.weight_decay, mask=mask)
  elif name == "rmsprop":
    # g / (sqrt(nu) + eps), as PyTorch's RMSprop (the WGAN authors' optimizer) divides: optax's default
    # puts eps under the root, which floors the denominator at 1e-4 and shrank a clipped critic's steps
    # (its gradients are mostly below 1e-4) up to a hundredfold.
    tx = optax.rmsprop(per_update, decay=cfg.decay, eps=cfg.eps, eps_in_sqrt=False,
                       centered=cfg.centered)
  elif name == "adagrad":
    tx = optax.adagrad(per_update, initial_accumulator_value=cfg.initial_accumulator,
                       eps=cfg.eps)
  else:
    raise ValueError(f"unknown optim.name {name!r}; use adam, adamw, rmsprop or adagrad")
  clip = cfg.grad_clip_norm
  if clip:
    tx = optax.chain(optax.clip_by_global_norm(clip), tx)
  weight_clip = cfg.weight_clip
  if weight_clip:
    tx = optax.chain(tx, clip_parameters(weight_clip))
  return tx, schedule


def make_optimizers(config, blocks: dict[str, str], updates_per_step: dict[str, int] | None = None
                    ) -> tuple[dict[str, optax.GradientTransformation], dict[str, optax.Schedule]]:
  """({network: optimizer}, {network: schedule}) from config[block] for each network's block;
  updates_per_step: {network: its updates per train step} (Task.updates_per_step; 1 if absent)."""
  counts = updates_per_step or {}
  for network, block in blocks.items():
    if block not in config:
      raise ValueError(f"network {network!r} is updated with optimizer block {block!r}, which the config "
                       f"lacks; add config.{block} (e.g. a copy of config.optim with its own settings)")
  built = {network: make_optimizer(config[block], config.train.num_steps, counts.get(network, 1))
           for network, block in blocks.items()}
  return {n: tx for n, (tx, _) in built.items()}, {n: schedule for n, (_, schedule) in built.items()}
