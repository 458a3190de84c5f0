"""Image classifier task: the network behind the digits feature space of the sample-quality metrics.

Trained by the one trainer on the data's labels (cross-entropy); reports test `accuracy` and
`test_nll_nats`. `train_and_export` trains a classifier config and exports its parameters with its test
accuracy and the FD-digits data floor it defines; the digits feature space reads the export shipped in
gm_jax/evaluation/weights/digits_classifier (experiments/export_digits_classifier.py made it).
"""

from __future__ import annotations

import pathlib
import shutil
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gm_jax.data import split as split_lib
from gm_jax.data.dataset import Dataset
from gm_jax.evaluation import feature_spaces, sample_quality
from gm_jax.evaluation.metrics import masked_mean
from gm_jax.models.classifier import ClassifierConfig, ConvClassifier
from gm_jax.objectives import cross_entropy
from gm_jax.tasks import conditioning
from gm_jax.train import config_checks
from gm_jax.train.task import Task, Update


def classifier_config(config, dataset: Dataset) -> ClassifierConfig:
  m = config.model
  config_checks.check_sizes(config, {"model.channels": 1, "model.features": 1})
  config_checks.check_rate(config, "model.dropout")
  return ClassifierConfig(num_classes=m.num_classes, num_levels=dataset.spec.num_levels,
                          channels=tuple(m.channels), features=m.features, dropout=m.dropout,
                          compute_dtype=config.train.compute_dtype)


def build(config, dataset: Dataset) -> Task:
  if dataset.spec.kind != "image" or "label" not in dataset.train[[0]]:
    raise ValueError(f"the classifier task needs labelled integer-level images; {dataset.name!r} is "
                     f"{dataset.spec.kind!r}" + ("" if dataset.spec.kind != "image" else " without labels"))
  if conditioning.num_classes(config, dataset) < 2:  # also checked against the data's label count
    raise ValueError(f"model.num_classes={config.model.num_classes}: a classifier needs at least 2 classes")
  model = ConvClassifier(classifier_config(config, dataset))

  def nll_and_correct(params, batch, key=None):
    train = key is not None
    logits = model.apply({"params": params["model"]}, batch["x"], train,
                         rngs={"dropout": key} if train else {})
    labels = batch["label"].astype(jnp.int32)
    nll = cross_entropy.token_nll(logits[:, None], labels[:, None])[:, 0]
    return nll, (jnp.argmax(logits, -1) == labels).astype(jnp.float32)

  def loss_fn(params, model_state, batch, key):
    nll, correct = nll_and_correct(params, batch, key)
    total, count = masked_mean(nll, batch["mask"])
    return total / count, ({"nll_nats": (total, count), "accuracy": masked_mean(correct, batch["mask"])}, {})

  def eval_fn(params, model_state, batch, key):
    nll, correct = nll_and_correct(params, batch)
    return {"test_nll_nats": masked_mean(nll, batch["mask"]), "accuracy": masked_mean(correct, batch["mask"])}

  def init(key, batch):
    return {"model": model.init(key, jnp.asarray(batch["x"][:1]))}

  def summarize(means):
    return {"note": "a classifier: accuracy on the test split, no likelihood of x"}

  return Task(init=init, updates=(Update("model", loss_fn),), eval_fn=eval_fn, summarize=summarize)


def default_config():
  """The digits classifier (experiments/configs/digits_classifier.py): the FD-digits feature network."""
  from gm_jax.train.defaults import base_config

  config = base_config()
  config.task = "classifier"
  config.data.name = "digits"
  config.data.batch_size = 128
  config.model.num_classes = 10
  config.model.channels = (32, 64, 64)
  config.model.features = 128
  config.model.dropout = 0.3
  config.optim.learning_rate = 2e-3
  config.optim.schedule = "cosine"
  config.optim.warmup_steps = 100
  config.optim.end_lr_ratio = 0.01
  config.train.num_steps = 2000
  config.train.log_every = 200
  config.train.eval_every = 500
  config.train.checkpoint_every = 2000
  config.train.num_samples = 0
  config.train.progress_bar = False
  config.eval.feature_space = "none"  # the feature network is not judged in its own feature space
  return config


def data_floor_fd(space: feature_spaces.FeatureSpace, dataset: Dataset, num_samples: int = 1000) -> float:
  """FD-digits of `num_samples` training digits (the trainer's fixed subset) against the test digits: the
  data floor that every digits run reports beside its samples (eval.quality_samples = 1000 and the test
  split as reference)."""
  train, test = dataset.train, dataset.test
  real = space.embed(train[split_lib.fixed_subset(len(train), num_samples)]["x"])[0]
  return sample_quality.frechet_distance(real, space.embed(test[np.arange(len(test))]["x"])[0])


def _is_export(path: pathlib.Path) -> bool:
  names = {feature_spaces.CLASSIFIER_INFO, feature_spaces.CLASSIFIER_PARAMS}
  return path.is_dir() and not path.is_symlink() and {p.name for p in path.iterdir()} <= names


def train_and_export(directory: pathlib.Path, workdir: pathlib.Path, config=None) -> dict[str, Any]:
  """Trains `config` (default: the digits classifier, experiments/configs/digits_classifier.py) in `workdir`
  (resuming or reading a finished run there) and exports its parameters and model config to `directory`
  (params.msgpack, model.json) with its test accuracy and the FD-digits data floor in its feature space;
  returns that information."""
  from gm_jax.data import load_dataset
  from gm_jax.train import loop

  given = config is not None
  config = config if given else default_config()
  directory = pathlib.Path(directory)
  partial = directory.with_name(directory.name + ".partial")
  earlier = directory.with_name(directory.name + ".earlier")
  for path in (directory, partial, earlier):  # replaced or removed below: only an export may be
    if path.exists() and not _is_export(path):
      raise ValueError(f"{str(path)!r} exists and is not a classifier export (files "
                       f"{feature_spaces.CLASSIFIER_INFO} and {feature_spaces.CLASSIFIER_PARAMS} only), "
                       f"which the export would replace; choose another --out or move it away")
  summary = loop.train(config, str(workdir), build)
  exp = loop.Experiment(config, pathlib.Path(workdir), build)
  try:
    state, _ = exp.restore_latest()
  finally:
    exp.checkpointer.close()
  dataset = load_dataset(config.data)
  model_config = classifier_config(config, dataset)
  params = jax.device_get(state.params()["model"])
  info = {"test_accuracy": summary["accuracy"], "input_shape": list(dataset.spec.shape),
          "config": "a given config" if given else "experiments/configs/digits_classifier.py",
          "train_steps": config.train.num_steps, "jax": jax.__version__}
  # Exported beside the directory and moved into place whole: a run that fails or is interrupted leaves
  # an earlier export (e.g. the package's shipped one) as it was.
  shutil.rmtree(partial, ignore_errors=True)
  partial.mkdir(parents=True)
  feature_spaces.export_classifier(partial, params, model_config, info)
  space = feature_spaces.classifier_space(partial, "digits", dataset.spec.shape, dataset.spec.num_levels)
  info["fd_digits_floor"] = data_floor_fd(space, dataset)
  feature_spaces.export_classifier(partial, params, model_config, info)  # with the floor it defines
  if directory.exists():
    shutil.rmtree(earlier, ignore_errors=True)
    directory.rename(earlier)
    partial.rename(directory)
    shutil.rmtree(earlier)
  else:
    partial.rename(directory)
  return info
