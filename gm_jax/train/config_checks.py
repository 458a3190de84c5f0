"""Checks of a run's config: settings that cannot train, and what differs from a workdir's config.json.

`check_config` rejects a config before anything is built or written; `config_differences` compares the
config a workdir stores with a new one (resuming, eval and sample modes), as config.json stores it
(`config_to_dict`).
"""

from __future__ import annotations

import functools
import json
import math
import numbers
from typing import Any

from absl import logging

from gm_jax.models import precision
from gm_jax.train import defaults, optim
from gm_jax.train.run_files import finite_or_null


def _learning_rates(config, prefix: str = "") -> list[tuple[str, Any]]:
  """Every `learning_rate` field of the config (optim and per-network blocks such as optim_d)."""
  found = []
  for key, value in config.items():
    if hasattr(value, "items"):
      found += _learning_rates(value, f"{prefix}{key}.")
    elif key == "learning_rate":
      found.append((f"{prefix}{key}", value))
  return found


# Seeds are JAX PRNG data, which jax.random.fold_in takes as 32-bit unsigned integers.
_SEED_RANGE = (0, 2**32 - 1)
# Counts with their least value (and seeds with their range). A 0 interval means "only at the end" for
# what the last step writes anyway; the training log needs a period, and the last checkpoint must be kept
# for eval and resumption.
_COUNTS = (("train.num_steps", 1), ("train.log_every", 1), ("train.checkpoint_every", 0),
           ("train.eval_every", 0), ("train.sample_every", 0), ("train.num_samples", 0),
           ("train.keep_checkpoints", 1), ("data.batch_size", 1), ("eval.batch_size", 1),
           ("seed", *_SEED_RANGE), ("data.seed", *_SEED_RANGE), ("eval.sample_seed", *_SEED_RANGE))


def check_counts(config, counts) -> None:
  """Each (name, least) or (name, least, most): an integer in that range."""
  for name, least, *most in counts:
    value = functools.reduce(lambda tree, key: tree[key], name.split("."), config)
    if (isinstance(value, bool) or not isinstance(value, int) or value < least
        or (most and value > most[0])):
      bound = f"in [{least}, {most[0]}]" if most else f">= {least}"
      raise ValueError(f"{name}={value!r} must be an integer {bound}; set --config.{name}")


# Bounds that +infinity turns off (as 0 does the clipping bounds); anywhere else infinity is no setting.
_MAY_BE_INFINITE = ("grad_clip_norm", "weight_clip", "edm_s_tmax")


def _non_finite_fields(tree: dict, prefix: str = "") -> list[tuple[str, float]]:
  found = []
  for key, value in tree.items():
    if isinstance(value, dict):
      found += _non_finite_fields(value, f"{prefix}{key}.")
      continue
    allowed = (math.inf,) if key in _MAY_BE_INFINITE else ()
    found += [(f"{prefix}{key}", v) for v in (value if isinstance(value, (list, tuple)) else (value,))
              if isinstance(v, float) and not math.isfinite(v) and v not in allowed][:1]
  return found


def check_finite(config) -> None:
  """NaN and infinity are no settings (but for the bounds infinity turns off): NaN passes every range check
  written as a comparison that fails for it, and an infinite factor reached the first step as a NaN loss,
  blaming the learning rate, after config.json had stored it as null."""
  fields = _non_finite_fields(config.to_dict())
  if fields:
    (name, value), names = fields[0], ", ".join(name for name, _ in fields)
    raise ValueError(f"{names} = {value} is not a finite number; set --config.{name} to one")


def _missing_fields(start: dict, config: dict, prefix: str = "") -> list[str]:
  missing = []
  for key, value in start.items():
    if key not in config:
      missing.append(f"{prefix}{key}")
    elif isinstance(value, dict) and isinstance(config[key], dict):
      missing += _missing_fields(value, config[key], f"{prefix}{key}.")
  return missing


def check_fields_of_family(config) -> None:
  """The config has the family's own fields (those of one of its default configs beyond the base config's):
  with --config.task set to another family the builder failed on the first field it read. The trainer's
  fields are left to the checks that read them (a config file may predate one that is read optionally)."""
  base, *families = defaults.starting_configs(config.task)
  if not families:  # a family that registered no defaults (or an unknown task, refused when built)
    return
  now, base = config.to_dict(), base.to_dict()
  missing = min(([f for f in _missing_fields(start.to_dict(), now) if field_value(base, f) == MISSING]
                 for start in families), key=len)
  if missing:
    shown = ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else "")
    raise ValueError(f"the config lacks {shown}, which config.task={config.task!r} reads: start from a "
                     f"{config.task!r} config (experiments/configs) rather than changing config.task, or "
                     f"add the fields")


def _is_number(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_config(config) -> None:
  """Rejects settings that cannot train, before anything is built or written."""
  for name, value in _learning_rates(config):
    try:
      ok = math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
      ok = False
    if not ok:
      raise ValueError(f"{name}={value} must be a finite number > 0; set --config.{name}")
  check_finite(config)
  check_fields_of_family(config)
  check_counts(config, _COUNTS)
  precision.compute_dtype(config.train.compute_dtype)  # checked here: some families read no dtype
  family_default = defaults.starting_configs(config.task)[-1]  # for the optimizers' unread fields
  for name, _ in _learning_rates(config):
    prefix = name[:-len("learning_rate")]  # the optimizer's block, e.g. "optim." or "optim_d."
    block = functools.reduce(lambda tree, key: tree[key], prefix.split(".")[:-1], config)
    check_counts(config, [(prefix + field, 0) for field in ("warmup_steps", "decay_steps") if field in block])
    # Each is a non-negative factor or bound: a negative one turns the learning rate (end_lr_ratio,
    # scales) or the gradient (grad_clip_norm) around, and training goes uphill without a word.
    for field in ("end_lr_ratio", "grad_clip_norm", "weight_clip", "weight_decay"):
      if field in block and not block[field] >= 0:
        raise ValueError(f"{prefix}{field}={block[field]} must be >= 0; set --config.{prefix}{field}")
    if "scales" in block and not all(_is_number(v) and math.isfinite(v) and v >= 0 for v in block.scales):
      raise ValueError(f"{prefix}scales={tuple(block.scales)} must be finite and >= 0")
    steps = tuple(block.get("boundaries", ()))
    if not (all(isinstance(b, numbers.Integral) and not isinstance(b, bool) and b >= 0 for b in steps)
        and all(a < b for a, b in zip(steps, steps[1:]))):
      # Out of order, optax's joined schedule skipped a piece without a word.
      raise ValueError(f"{prefix}boundaries={steps} must be increasing train steps (integers >= 0); set "
                       f"--config.{prefix}boundaries")
    _check_optimizer_block(block, prefix, config.train.num_steps)
    block_name = prefix[:-1]
    default = {block_name: family_default[block_name] if block_name in family_default else
               family_default.optim}
    defaults.warn_unread_options(config, default, {f"{block_name}.{field}": who for field, who in
                                                   optim.unread_fields(block).items() if field in block},
                                 f"{block_name} ({block.name}, {block.schedule} schedule)")
  decay = config.train.ema_decay
  if not 0 <= decay < 1:
    raise ValueError(f"train.ema_decay={decay} must be in [0, 1) (0: no EMA); set --config.train.ema_decay")
  left = decay ** config.train.num_steps
  if left > 0.05:  # the average starts at the initial parameters, with no correction for that
    logging.warning("train.ema_decay=%g over %d steps: the EMA parameters, which evaluation and sampling "
                    "use, still hold %.0f%% of the initial ones at the end; lower train.ema_decay or train "
                    "longer", decay, config.train.num_steps, 100 * left)


# Each optimizer's factors that must lie in [0, 1) (a moment's or a mean's decay) or be > 0 (a divisor's
# floor: with eps = 0 a parameter whose gradient is 0 gets 0 / 0), by the optimizers that read them.
_UNIT_INTERVAL = {"b1": ("adam", "adamw"), "b2": ("adam", "adamw"), "decay": ("rmsprop",)}
_POSITIVE = {"eps": ("adam", "adamw", "rmsprop", "adagrad")}


def _check_optimizer_block(block, prefix: str, num_steps: int) -> None:
  """An optimizer's factors, and a warmup that the schedule's decay or the run does not outlast."""
  for fields, ok, wanted in ((_UNIT_INTERVAL, lambda v: 0 <= v < 1, "in [0, 1)"),
                             (_POSITIVE, lambda v: v > 0, "> 0")):
    for field, readers in fields.items():
      value = block.get(field)
      if block.name in readers and not (_is_number(value) and ok(value)):
        raise ValueError(f"{prefix}{field}={value!r} must be a number {wanted} for {block.name}; set "
                         f"--config.{prefix}{field}")
  if block.name == "adagrad" and not block.initial_accumulator >= 0:
    raise ValueError(f"{prefix}initial_accumulator={block.initial_accumulator} must be >= 0; set "
                     f"--config.{prefix}initial_accumulator")
  warmup = block.get("warmup_steps", 0)
  if not warmup:
    return
  if block.schedule in ("cosine", "linear") and 0 < block.decay_steps <= warmup:
    raise ValueError(f"{prefix}warmup_steps={warmup} does not end before {prefix}decay_steps="
                     f"{block.decay_steps}, where the decay ends (the learning rate would drop from its "
                     f"peak to its end at once); lower the warmup or raise decay_steps")
  if block.schedule == "piecewise" and any(b <= warmup for b in block.boundaries):
    raise ValueError(f"{prefix}boundaries={tuple(block.boundaries)} must lie after {prefix}warmup_steps="
                     f"{warmup} (a piece inside the warmup would start at its end); move them or shorten "
                     f"the warmup")
  if warmup >= num_steps:
    logging.warning("%swarmup_steps=%d outlasts the run's %d steps: the learning rate never reaches %s"
                    "learning_rate", prefix, warmup, num_steps, prefix)


def _entries(value):
  """The numbers of a size field: an int, or a tuple of them (nested per layer)."""
  if isinstance(value, (tuple, list)):
    return [n for v in value for n in _entries(v)]
  return [value]


def check_sizes(config, least: dict[str, int]) -> None:
  """Each `block.field` is a size, or a tuple of sizes, of at least its least value (a width of 0 failed
  deep in an initializer with a division by zero, a negative count of blocks looped without end)."""
  for name, low in least.items():
    block, field = name.split(".")
    value = config[block][field]
    if not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= low
               for n in _entries(value)):
      raise ValueError(f"{name}={value!r} needs {'sizes' if isinstance(value, (tuple, list)) else 'a size'} "
                       f">= {low}; set --config.{name}")


def check_rate(config, name: str) -> None:
  """A dropout rate in [0, 1): at 1 or above every activation is zeroed, below 0 they are rescaled."""
  block, field = name.split(".")
  value = config[block][field]
  if not (_is_number(value) and 0 <= value < 1):
    raise ValueError(f"{name}={value!r} must be in [0, 1); set --config.{name}")


def check_eval_fields(config) -> None:
  """The checks of `check_config` that eval and sample modes need: they read only the eval.* fields."""
  check_finite(config)
  check_counts(config, [count for count in _COUNTS if count[0].startswith("eval.")])


def changes_only_evaluation(field: str) -> bool:
  """Whether a config field (as config_differences names it) changes what evaluation computes and nothing
  of the training: eval.* and the language models' test-window stride. Eval and sample modes take such
  changes."""
  return field.startswith("eval.") or field == "data.eval_stride"


# Fields that may change between runs of one workdir: the mesh layout (a checkpoint restores onto any
# layout), the progress bar (it changes what the terminal shows, not what the run computes or writes) and
# how checkpoints are kept (a resumed run is exact from any checkpoint, which carries its log window: after
# a full disk, keeping fewer is what a resume needs).
FREE_FIELDS = ("mesh.", "train.progress_bar.", "train.keep_checkpoints.", "train.checkpoint_every.",
               "train.async_checkpoints.")


def config_to_dict(config) -> dict[str, Any]:
  """The config as config.json stores it (non-finite numbers as null), so a rerun compares equal to it."""
  return finite_or_null(json.loads(config.to_json_best_effort(sort_keys=True)))


MISSING = "<missing>"


def config_differences(old: dict, new: dict, prefix: str = "",
                       starts: list[dict] | None = None) -> list[str]:
  """The fields whose values differ between a stored config and a new one. A field the stored config
  lacks (its run predates the field) at a value its configs start from (`starts`: the base config and
  the family's registered default configs, gm_jax.train.defaults) is no difference: runs from before a
  new option can still be resumed and evaluated."""
  if starts is None:
    starts = [config_to_dict(c) for c in defaults.starting_configs(old.get("task", new.get("task", "")))]
  diffs = []
  for k in sorted(set(old) | set(new)):
    if f"{prefix}{k}.".startswith(FREE_FIELDS):
      continue
    a, b = old.get(k, MISSING), new.get(k, MISSING)
    if isinstance(a, dict) and isinstance(b, dict):
      inner = [s[k] for s in starts if isinstance(s.get(k), dict)]
      diffs += config_differences(a, b, f"{prefix}{k}.", inner)
    elif a != b and not (a == MISSING and any(s.get(k, MISSING) == b for s in starts)):
      diffs.append(f"{prefix}{k}")
  return diffs


def field_value(tree: dict, path: str) -> Any:
  for key in path.split("."):
    if not isinstance(tree, dict) or key not in tree:
      return MISSING
    tree = tree[key]
  return tree


def described_differences(diffs: list[str], stored: dict, now: dict, limit: int = 5) -> str:
  """'field (stored X, now Y)' for the first `limit` differing fields ('absent': the config lacks it)."""
  value = lambda tree, d: "absent" if field_value(tree, d) == MISSING else json.dumps(field_value(tree, d))
  shown = [f"{d} (stored {value(stored, d)}, now {value(now, d)})" for d in diffs[:limit]]
  return ", ".join(shown) + (", ..." if len(diffs) > limit else "")
