"""Input pipelines: `load_dataset(config.data)` returns a Dataset with train/test sources."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from gm_jax.data import digits, image_folder, markov, npz, reflow_pairs, text, tfds_source, toy2d
from gm_jax.data import split as split_lib
from gm_jax.data.dataset import DataSpec, Dataset
from gm_jax.data.pipeline import ArraySource, TrainIterator, eval_batches


def toy2d_distribution(data_config):
  """The toy distribution a config names, with its geometry taken from the config."""
  geometry = dict(data_config.geometry)
  return toy2d.make(data_config.distribution, **geometry)


def load_toy2d(data_config) -> Dataset:
  """Fixed train and test samples (drawn with data.seed) from the named toy distribution."""
  dist = toy2d_distribution(data_config)
  counts = {"num_train": (data_config.num_train, 1, "examples drawn"),
            "num_test": (data_config.num_test, 1, "examples drawn"),
            "entropy_samples": (data_config.get("entropy_samples", toy2d.ENTROPY_SAMPLES), 2,
                                "draws of the entropy floor's estimate")}
  for field, (count, least, what) in counts.items():
    if isinstance(count, bool) or not isinstance(count, int) or count < least:
      raise ValueError(f"data.{field}={count!r} must be an integer >= {least} (toy2d {what})")
  key = jax.random.key(data_config.seed)
  train = np.asarray(dist.sample(jax.random.fold_in(key, 0), data_config.num_train), np.float32)
  test = np.asarray(dist.sample(jax.random.fold_in(key, 1), data_config.num_test), np.float32)
  spec = DataSpec(kind="points", shape=(2,), extras={
      "distribution": dist, "entropy_samples": counts["entropy_samples"][0]})
  return Dataset(dist.name, ArraySource({"x": train}), ArraySource({"x": test}), spec)


def load_dataset(data_config) -> Dataset:
  """The data set data.name names; with data.reflow_pairs, its training split is those pairs."""
  dataset = _load_named(data_config)
  if data_config.get("eval_stride"):  # a language model's test windows (only text and markov read it)
    dataset = dataclasses.replace(dataset, test=text.restrided(dataset.test, data_config.eval_stride))
  for split, own_array in (("train", "x"), ("test", "x_test")):
    if not len(getattr(dataset, split)):
      raise ValueError(f"data {dataset.name!r} has an empty {split} split; give it examples (toy2d: "
                       f"data.num_{split}; own arrays: {own_array})")
  if data_config.get("reflow_pairs"):
    dataset = reflow_pairs.with_reflow_pairs(dataset, data_config.reflow_pairs)
  if data_config.get("random_flip") and (dataset.spec.kind != "image" or data_config.get("reflow_pairs")):
    what = "reflow pairs (a flip would part each image from its noise)" if data_config.get(
        "reflow_pairs") else f"{dataset.spec.kind}, not images"
    raise ValueError(f"data.random_flip mirrors training images, but data {dataset.name!r} is {what}; set "
                     f"data.random_flip=False")
  return dataset


# The own-data fields each loader reads; set for another loader, they would be ignored without a word.
_READS = {"image_folder": ("path", "image_size", "num_levels"), "npz": ("path", "image_size", "num_levels"),
          "text": ("path", "tfds_name", "level", "data_dir", "eval_stride"), "markov": ("eval_stride",),
          **{name: ("image_size", "crop", "data_dir") for name in tfds_source.IMAGE_SETS}}
# Their values when unset (level: the text loader's default tokens).
_UNSET = {"path": "", "image_size": 0, "num_levels": 0, "crop": 0, "tfds_name": "", "level": "char",
          "data_dir": "", "eval_stride": 0}
_HINTS = {"crop": "it crops TFDS image sets", "data_dir": "it locates TFDS data sets",
          "tfds_name": "it names a TFDS text data set for data.name='text'",
          "level": "it sets the text loader's tokens (char or byte)",
          "eval_stride": "it spaces a language model's test windows (data.name text or markov)"}


def _check_fields_are_read(data_config) -> None:
  name = data_config.name
  for field, unset in _UNSET.items():
    if data_config.get(field, unset) != unset and field not in _READS.get(name, ()):
      hint = _HINTS.get(field, "it is read for your own data: data.name image_folder, npz or text, "
                               "docs/own_data.md")
      raise ValueError(f"data.{field} is set, but data.name={name!r} does not read it ({hint}); set "
                       f"data.{field}={unset!r}")
  # The loaders that may split their data themselves (image_folder and npz refuse it beside an own split).
  fraction = data_config.get("test_fraction", split_lib.DEFAULT_TEST_FRACTION)
  if fraction != split_lib.DEFAULT_TEST_FRACTION and name not in ("image_folder", "npz", "text", "markov"):
    raise ValueError(f"data.test_fraction is set, but data.name={name!r} does not read it: its split is "
                     f"its own")
  missing = [field for field in _NEEDS.get(name, ()) if field not in data_config]
  if missing:  # a config of other data, given this data.name
    needs, example = _NEEDS[name], _EXAMPLES[name]
    raise ValueError(f"data.name={name!r} needs {', '.join('data.' + f for f in needs)}, which this config "
                     f"lacks (data.{missing[0]}); start from a config of that data, e.g. {example}")


# The fields a generated or language-model data source needs, which other data's configs lack.
_NEEDS = {"toy2d": ("distribution", "geometry", "num_train", "num_test", "entropy_samples"),
          "markov": ("vocab_size", "num_tokens", "context", "concentration"), "text": ("context",)}
_EXAMPLES = {"toy2d": "experiments/configs/toy2d_vae.py", "markov": "experiments/configs/markov_lm.py",
             "text": "experiments/configs/shakespeare_char_cpu.py"}


def check_overrides_are_read(data_config, overridden: list[str]) -> None:
  """Refuses a command-line override of a generated or language-model source's field (`overridden`:
  keys under data, e.g. 'num_train' or 'geometry.radius') that data.name's loader does not read. A toy2d
  or Markov config switched to other data keeps such fields unread; that is the config file's doing,
  but a value the user sets there (data.num_train=1000 beside data.name='npz') would be ignored."""
  name = data_config.name
  for key in overridden:
    readers = [source for source, fields in _NEEDS.items() if key.split(".")[0] in fields]
    if readers and name not in readers:
      raise ValueError(f"data.{key} is set, but data.name={name!r} does not read it (only "
                       f"{' and '.join(readers)} data do); drop --config.data.{key}")


def _load_named(data_config) -> Dataset:
  _check_fields_are_read(data_config)
  name = data_config.name
  if name == "toy2d":
    return load_toy2d(data_config)
  if name == "digits":
    return digits.load()
  if name == "markov":
    return markov.load(data_config.vocab_size, data_config.num_tokens, data_config.context,
                       data_config.concentration, data_config.seed, data_config.test_fraction)
  if name == "text":
    return text.load(data_config.path, data_config.tfds_name or None, data_config.level, data_config.context,
                     data_config.data_dir or None, data_config.test_fraction)
  if name == "image_folder":
    return image_folder.load(data_config.path, data_config.image_size, data_config.num_levels,
                             data_config.test_fraction)
  if name == "npz":
    return npz.load(data_config.path, data_config.num_levels, data_config.test_fraction,
                    data_config.image_size)
  if name in tfds_source.IMAGE_SETS:
    return tfds_source.load(name, data_config.data_dir or None, data_config.crop, data_config.image_size)
  raise ValueError(f"unknown data.name {name!r}; choose toy2d, digits, text, markov, image_folder (data.path "
                   f"= a folder of images), npz (data.path = a .npy/.npz file) or one of "
                   f"{sorted(tfds_source.IMAGE_SETS)}")


__all__ = ["ArraySource", "DataSpec", "Dataset", "TrainIterator", "eval_batches", "load_dataset",
           "toy2d_distribution"]
