"""The built-in model families as Tasks for the trainer, and the runs that train them.

`build(config, dataset)` gives the Task of `config.task`; `build_feature_space(config, dataset)` the
sample-quality feature space; `train` / `evaluate` / `sample` run gm_jax.train.loop with both. A new
family is one module with a builder `(config, dataset) -> Task` (docs/adding_a_model.md); it needs no
change in gm_jax/train, and is registered in BUILDERS only to be reachable by name from configs.
"""

from __future__ import annotations

import functools
import inspect
import pathlib
from typing import Any, Callable

from absl import logging

from gm_jax.data.dataset import Dataset
from gm_jax.evaluation import feature_spaces
from gm_jax.tasks import classifier, density, diffusion, flow, gan, language_model, pixelcnn, pixelrnn, vae
from gm_jax.train import defaults, loop
from gm_jax.train.task import Task

BUILDERS = {
    "gmm": density.build_gmm,
    "vae": vae.build,
    "flow": flow.build,
    "diffusion": diffusion.build,
    "gan": gan.build,
    "language_model": language_model.build,
    "pixelcnn": pixelcnn.build,
    "classifier": classifier.build,
}

# The configs each family's experiment configs start from (PixelRNN's are pixelcnn tasks): a run that
# predates a field of these is still resumed (gm_jax.train.defaults.register_family_defaults).
DEFAULT_CONFIGS = {
    "gmm": (density.default_config,),
    "vae": (vae.default_config,),
    "flow": (flow.default_config,),
    "diffusion": (diffusion.default_config,),
    "gan": (gan.default_config,),
    "language_model": (language_model.default_config,),
    "pixelcnn": (pixelcnn.default_config, pixelrnn.default_config),
    "classifier": (classifier.default_config,),
}
for _task, _configs in DEFAULT_CONFIGS.items():
  defaults.register_family_defaults(_task, *_configs)

# Each family's `:tiny` size, applied after gm_jax.train.defaults.tiny_run (the classifier needs no more).
TINY_SIZES = {
    "gmm": density.tiny,
    "vae": vae.tiny,
    "flow": flow.tiny,
    "diffusion": diffusion.tiny,
    "gan": gan.tiny,
    "language_model": language_model.tiny,
    "pixelcnn": pixelcnn.tiny,
}


def with_tiny_size(get_config: Callable) -> Callable:
  """Decorates an experiment config file's get_config so that `tiny` among its comma-separated arguments
  gives the config's smoke-test size, the same for every config of a family: tiny_run, then the family's
  TINY_SIZES entry, applied to the finished config. The other arguments go to get_config (an error if it
  takes none)."""
  takes_arg = bool(inspect.signature(get_config).parameters)

  @functools.wraps(get_config)
  def sized_get_config(arg: str | None = None):
    rest, tiny = defaults.split_tiny(arg)
    if rest and not takes_arg:
      raise ValueError(f"unknown config argument {rest!r}; use ':tiny' or nothing")
    config = get_config(rest) if takes_arg else get_config()
    if tiny:
      defaults.tiny_run(config)
      TINY_SIZES.get(config.task, lambda config: None)(config)
    return config

  return sized_get_config


def build(config, dataset: Dataset) -> Task:
  """The Task of the family `config.task` names."""
  if config.task not in BUILDERS:
    raise ValueError(f"unknown config.task {config.task!r}; choose one of {sorted(BUILDERS)}")
  task = BUILDERS[config.task](config, dataset)
  if config.model.num_classes and task.sample_fn is not None and task.sample_labels is None:
    raise ValueError(f"family {config.task!r} has no class-conditional model; set model.num_classes=0")
  return task


def build_feature_space(config, dataset: Dataset) -> feature_spaces.FeatureSpace | None:
  """The sample-quality feature space `config.eval.feature_space` names (None for 'none')."""
  spec = dataset.spec
  name = feature_spaces.resolve_name(config.eval.feature_space, config.data.name, spec.kind)
  if name == "none":
    return None
  unread = {}
  if name != "inception_v3":
    unread["eval.inception_weights"] = "with eval.feature_space='inception_v3'"
  if name == "raw":  # no classifier, so no Inception Score
    unread["eval.inception_score_splits"] = "in a classifier's feature space (digits, inception_v3)"
  defaults.warn_unread_options(config, defaults.base_config(), unread, f"the {name!r} feature space")
  if name == "raw":
    if spec.kind == "tokens":  # token ids are categories, and samples need not be as long as test windows
      raise ValueError(f"eval.feature_space='raw' compares images or points; data {dataset.name!r} is "
                       f"'tokens': set eval.feature_space='none'")
    return feature_spaces.raw()
  if spec.kind != "image":
    raise ValueError(f"eval.feature_space={name!r} reads images; data {dataset.name!r} is {spec.kind!r}")
  if name == "digits":
    # Its classes are the digits data's labels; another data set's labels (own digits in folders named
    # "zero".."nine", sorted by name) may mean other classes, so no class accuracy is claimed for them.
    own_labels = config.data.name == "digits"
    if not own_labels and config.model.get("num_classes", 0):
      logging.warning("class_accuracy is left out: the digits classifier's classes are the labels of "
                      "data.name='digits', which data %r's labels need not be", config.data.name)
    return feature_spaces.classifier_space(feature_spaces.DIGITS_CLASSIFIER, "digits", spec.shape,
                                           spec.num_levels, classes_are_data_labels=own_labels)
  return feature_spaces.inception_space(config.eval.inception_weights, spec.num_levels,
                                        batch_size=config.eval.quality_batch_size)


def train(config, workdir: str | pathlib.Path, **kwargs) -> dict[str, Any]:
  """loop.train of a built-in family's config (kwargs: e.g. after_step)."""
  return loop.train(config, str(workdir), build, build_feature_space, **kwargs)


def evaluate(config, workdir: str | pathlib.Path) -> dict[str, Any]:
  """loop.evaluate of a built-in family's config: the latest checkpoint's summary numbers."""
  return loop.evaluate(config, str(workdir), build, build_feature_space)


def sample(config, workdir: str | pathlib.Path) -> dict[str, Any]:
  """loop.sample of a built-in family's config: the latest checkpoint's sample file (and the eval.*
  settings that differ from training's)."""
  return loop.sample(config, str(workdir), build)


def restored(config, workdir: str | pathlib.Path) -> tuple[loop.Experiment, Any]:
  """A built-in family's trained run: its Experiment (the caller closes exp.checkpointer) and latest
  state, refused like --mode=eval if the config differs outside eval.* or there is no checkpoint."""
  exp, state, _ = loop.restored_experiment(config, str(workdir), build, build_feature_space)
  return exp, state


def experiment(config, workdir: str | pathlib.Path, read_only: bool = False) -> loop.Experiment:
  """The loop's Experiment of a config (data, task, compiled steps, checkpoints) without running it;
  read_only: its checkpointer only restores (for a workdir that a training may be writing)."""
  return loop.Experiment(config, pathlib.Path(workdir), build, build_feature_space, read_only=read_only)
