"""Feature spaces in which samples are compared with data: each is named in every report.

- `raw`: the examples themselves, flattened (toy2d points).
- `digits`: the penultimate layer of the project's digits classifier (gm_jax.models.classifier, trained
  by experiments/configs/digits_classifier.py and shipped with the package, DIGITS_CLASSIFIER); its
  softmax also gives the class of a sample. Numbers in it are "FD-digits".
- `inception_v3`: pool3 of the standard FID Inception network, from a weight file the user supplies
  (`eval.inception_weights`; gm_jax.evaluation.inception_weights converts the published one).
Numbers from different feature spaces are never comparable.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any, Callable

import flax.serialization
import jax
import numpy as np

from gm_jax.evaluation import inception_weights
from gm_jax.models.classifier import ClassifierConfig, ConvClassifier
from gm_jax.train import cpu_compile

CLASSIFIER_PARAMS = "params.msgpack"
CLASSIFIER_INFO = "model.json"
NAMES = ("none", "auto", "raw", "digits", "inception_v3")


# The digits space's network, shipped so that FD-digits is one metric on every machine: the classifier
# retrained on another CPU, or under other XLA options, differs in float rounding, and so does its
# FD-digits (of the first 1,000 training digits against the test digits, the data floor of an earlier
# version: 46.9 against 47.8 for two such trainings; the floor is a fixed random 1,000 now).
DIGITS_CLASSIFIER = pathlib.Path(__file__).resolve().parent / "weights" / "digits_classifier"


@dataclasses.dataclass(frozen=True)
class FeatureSpace:
  """`apply(x_batch) -> (features (B, D), class probabilities (B, C) or None)` of data-space examples,
  applied in batches of `batch_size`; the probabilities exist when the space comes from a classifier."""

  name: str
  apply: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]
  batch_size: int = 500
  # Whether the classifier's classes are the data's labels (the digits classifier's are; Inception's 1008
  # ImageNet classes are no data set's): only then does a class-conditional model's class accuracy mean
  # anything.
  classes_are_data_labels: bool = False

  def embed(self, examples: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(features (N, D) float64, class probabilities (N, C) or None) of N examples."""
    feats, probs = [], []
    for start in range(0, len(examples), self.batch_size):
      f, p = self.apply(np.asarray(examples[start:start + self.batch_size]))
      feats.append(np.asarray(f, np.float64))
      if p is not None:
        probs.append(np.asarray(p, np.float64))
    return np.concatenate(feats), (np.concatenate(probs) if probs else None)


def resolve_name(name: str, data_name: str, kind: str) -> str:
  """`auto` is raw for points, digits for the digits data set, and none otherwise."""
  if name not in NAMES:
    raise ValueError(f"unknown eval.feature_space {name!r}; choose one of {NAMES}")
  if name != "auto":
    return name
  if kind == "points":
    return "raw"
  return "digits" if data_name == "digits" else "none"


def raw() -> FeatureSpace:
  return FeatureSpace("raw", lambda x: (np.asarray(x, np.float64).reshape(len(x), -1), None))


# the digits classifier ------------------------------------------------------------------------------
def classifier_is_exported(directory: pathlib.Path) -> bool:
  return (directory / CLASSIFIER_PARAMS).exists() and (directory / CLASSIFIER_INFO).exists()


def export_classifier(directory: pathlib.Path, params: Any, model_config: ClassifierConfig,
                      info: dict[str, Any]) -> None:
  """Writes a trained classifier's params and model config (the model file last: it marks completion)."""
  tmp = directory / (CLASSIFIER_PARAMS + ".tmp")
  tmp.write_bytes(flax.serialization.msgpack_serialize(jax.tree.map(np.asarray, params)))
  os.replace(tmp, directory / CLASSIFIER_PARAMS)
  tmp = directory / (CLASSIFIER_INFO + ".tmp")
  tmp.write_text(json.dumps({"model": dataclasses.asdict(model_config), **info}, indent=2) + "\n")
  os.replace(tmp, directory / CLASSIFIER_INFO)


def load_classifier(directory: pathlib.Path) -> tuple[ConvClassifier, Any, dict[str, Any]]:
  """The exported network, computing in float32 whatever dtype it trained in: the metrics it defines
  must not depend on which run exported it."""
  info = json.loads((directory / CLASSIFIER_INFO).read_text())
  model_fields = dict(info["model"], channels=tuple(info["model"]["channels"]), compute_dtype="float32")
  params = flax.serialization.msgpack_restore((directory / CLASSIFIER_PARAMS).read_bytes())
  return ConvClassifier(ClassifierConfig(**model_fields)), params, info


def classifier_space(directory: pathlib.Path, name: str, shape: tuple[int, ...], num_levels: int,
                     classes_are_data_labels: bool = True) -> FeatureSpace:
  """The penultimate layer and softmax of the classifier exported in `directory`; classes_are_data_labels:
  whether its classes are the labels of the data it judges (the data it was trained on)."""
  model, params, info = load_classifier(directory)
  if model.config.num_levels != num_levels:
    raise ValueError(f"the {name} feature network reads {model.config.num_levels}-level images; "
                     f"this data has {num_levels} levels: set eval.feature_space='none' or use matching data")
  expected = tuple(info.get("input_shape", shape))
  if tuple(shape) != expected:
    raise ValueError(f"the {name} feature network reads images of shape {expected}; "
                     f"this data has {tuple(shape)}: set eval.feature_space='none' or use matching data")

  @cpu_compile.jit
  def apply(x):
    feats = model.apply({"params": params}, x, method=ConvClassifier.features)
    return feats, jax.nn.softmax(model.apply({"params": params}, feats, method=ConvClassifier.classify))

  return FeatureSpace(name, apply, classes_are_data_labels=classes_are_data_labels)


# the FID Inception network -------------------------------------------------------------------------
def inception_space(weights_path: str, num_levels: int, batch_size: int = 200) -> FeatureSpace:
  """pool3 features of the FID Inception network (integer levels scaled to [0, 1]) and the softmax of its
  1008 logits without the classifier's bias, as the Inception Score's reference code (Salimans et al.
  2016) and torch-fidelity compute it."""
  if not weights_path:
    raise FileNotFoundError(
        f"eval.feature_space='inception_v3' needs eval.inception_weights: convert "
        f"{inception_weights.PTH_NAME} with `{inception_weights.CONVERT_COMMAND} --pth=FILE "
        f"--out=inception_v3_fid.npz` and pass the .npz, or set eval.feature_space='none'")
  network = inception_weights.InceptionFeatures.from_file(weights_path, batch_size=batch_size,
                                                          with_logits=True)

  bias = np.asarray(network.variables["params"]["fc"]["bias"])

  def apply(x):
    feats, logits = network(np.asarray(x, np.float32) / (num_levels - 1))
    return feats, jax.nn.softmax(logits - bias)

  return FeatureSpace("inception_v3", apply, batch_size=batch_size)
