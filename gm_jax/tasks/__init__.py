"""Builds the trainer's Task for `config.task` from a family's models and objectives.

To add a model family: write its models (gm_jax/models) and objective (gm_jax/objectives), then a
builder `build(config, dataset) -> Task` here, registered in BUILDERS.
"""

from __future__ import annotations

from gm_jax.data.dataset import Dataset
from gm_jax.tasks import density, diffusion, flow, gan, language_model, pixelcnn, vae
from gm_jax.train.task import Task

BUILDERS = {
    "gmm": density.build_gmm,
    "vae": vae.build,
    "flow": flow.build,
    "diffusion": diffusion.build,
    "gan": gan.build,
    "language_model": language_model.build,
    "pixelcnn": pixelcnn.build,
}


def build_task(config, dataset: Dataset) -> Task:
  if config.task not in BUILDERS:
    raise ValueError(f"unknown config.task {config.task!r}; choose one of {sorted(BUILDERS)}")
  return BUILDERS[config.task](config, dataset)
