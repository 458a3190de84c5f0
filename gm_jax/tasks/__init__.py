"""Builds the trainer's Task for `config.task` from a family's models and objectives.

To add a model family: write its models (gm_jax/models) and objective (gm_jax/objectives), then a
builder `build(config, dataset) -> Task` here, registered in BUILDERS.
"""

from __future__ import annotations

from gm_jax.data.dataset import Dataset
from gm_jax.evaluation import feature_spaces
from gm_jax.tasks import classifier, density, diffusion, flow, gan, language_model, pixelcnn, vae
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


def build_task(config, dataset: Dataset) -> Task:
  if config.task not in BUILDERS:
    raise ValueError(f"unknown config.task {config.task!r}; choose one of {sorted(BUILDERS)}")
  return BUILDERS[config.task](config, dataset)


def build_feature_space(config, dataset: Dataset) -> feature_spaces.FeatureSpace | None:
  """The sample-quality feature space `config.eval.feature_space` names (None for 'none')."""
  spec = dataset.spec
  name = feature_spaces.resolve_name(config.eval.feature_space, config.data.name, spec.kind)
  if name == "none":
    return None
  if name == "raw":
    return feature_spaces.raw()
  if spec.kind != "image":
    raise ValueError(f"eval.feature_space={name!r} reads images; data {dataset.name!r} is {spec.kind!r}")
  if name == "digits":
    return feature_spaces.classifier_space(classifier.ensure_trained_classifier(), "digits", spec.shape,
                                           spec.num_levels)
  return feature_spaces.inception_space(config.eval.inception_weights, spec.num_levels,
                                        batch_size=config.eval.quality_batch_size)
