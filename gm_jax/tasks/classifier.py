"""Image classifier task: the network behind the digits feature space of the sample-quality metrics.

Trained by the one trainer on the data's labels (cross-entropy); reports test `accuracy` and
`test_nll_nats`. `ensure_trained_classifier` trains the digits classifier once (the config of
experiments/configs/digits_classifier.py, which is `default_config()`) and caches its parameters under
the gm_jax cache directory (`$GM_JAX_CACHE`, default ~/.cache/gm_jax), where the evaluation finds them.
"""

from __future__ import annotations

import contextlib
import fcntl
import pathlib
import shutil

import jax
import jax.numpy as jnp

from gm_jax.data.dataset import Dataset
from gm_jax.evaluation import feature_spaces
from gm_jax.evaluation.metrics import masked_mean
from gm_jax.models.classifier import ClassifierConfig, ConvClassifier
from gm_jax.objectives import cross_entropy
from gm_jax.train.task import Task, Update


def classifier_config(config, dataset: Dataset) -> ClassifierConfig:
  m = config.model
  return ClassifierConfig(num_classes=m.num_classes, num_levels=dataset.spec.num_levels,
                          channels=tuple(m.channels), features=m.features, dropout=m.dropout,
                          compute_dtype=config.train.compute_dtype)


def build(config, dataset: Dataset) -> Task:
  if dataset.spec.kind != "image" or "label" not in dataset.train[[0]]:
    raise ValueError(f"the classifier task needs labelled integer-level images; {dataset.name!r} is "
                     f"{dataset.spec.kind!r}" + ("" if dataset.spec.kind != "image" else " without labels"))
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


def ensure_trained_classifier(name: str = "digits_classifier") -> pathlib.Path:
  """The directory holding the trained classifier's exported parameters, training it first if needed.

  Trains `default_config()` once in <cache>/<name>/run and exports params + model config to
  <cache>/<name>/ (feature_spaces.CLASSIFIER_FILES). Concurrent callers wait on a file lock; a failed
  training leaves no export, so the next call trains again.
  """
  directory = feature_spaces.cache_dir() / name
  if feature_spaces.classifier_is_exported(directory):
    return directory
  directory.mkdir(parents=True, exist_ok=True)
  with _locked(directory / ".lock"):
    if feature_spaces.classifier_is_exported(directory):
      return directory
    from gm_jax.data import load_dataset
    from gm_jax.train import loop

    config = default_config()
    run = directory / "run"
    shutil.rmtree(run, ignore_errors=True)
    summary = loop.train(config, str(run), build)
    exp = loop.Experiment(config, run, build)
    try:
      state, _ = exp.restore_latest()
    finally:
      exp.checkpointer.close()
    dataset = load_dataset(config.data)
    feature_spaces.export_classifier(directory, jax.device_get(state.params()["model"]),
                                     classifier_config(config, dataset),
                                     {"test_accuracy": summary["accuracy"],
                                      "input_shape": list(dataset.spec.shape),
                                      "config": "experiments/configs/digits_classifier.py"})
  return directory


@contextlib.contextmanager
def _locked(path: pathlib.Path):
  with open(path, "w") as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(handle, fcntl.LOCK_UN)
