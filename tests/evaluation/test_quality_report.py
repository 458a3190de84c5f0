"""Sample-quality report: Inception-Score algebra, the floor beside the samples, feature spaces."""

import dataclasses
import json
import shutil

import jax
import numpy as np
import pytest

from gm_jax import data as data_lib
from gm_jax.evaluation import feature_spaces, quality_report
from gm_jax.models.classifier import ClassifierConfig, ConvClassifier
from gm_jax.tasks import classifier, conditioning
from tests.conftest import load_config


def test_inception_score_closed_forms():
  # Confident and balanced over C classes: exp(log C) = C; identical predictions: exp(0) = 1.
  assert quality_report.inception_score(np.eye(7)[np.arange(70) % 7]) == pytest.approx(7.0, rel=1e-6)
  assert quality_report.inception_score(np.tile([0.2, 0.5, 0.3], (40, 1))) == pytest.approx(1.0, abs=1e-9)
  # Two classes, p(y|x) = (a, 1-a) and (1-a, a) half each: exp(log 2 - H(a)).
  a = 0.9
  probs = np.array([[a, 1 - a], [1 - a, a]] * 10)
  entropy = -(a * np.log(a) + (1 - a) * np.log(1 - a))
  assert quality_report.inception_score(probs) == pytest.approx(np.exp(np.log(2) - entropy), rel=1e-9)


def test_inception_score_over_splits_is_the_mean_and_std_of_contiguous_parts_in_a_fixed_random_order():
  """One split is the whole set's score; more are the mean and std (ddof 0) of the scores of nearly equal
  contiguous parts of the samples put in a fixed random order."""
  probs = np.random.default_rng(3).dirichlet(np.full(6, 0.3), size=83)
  score = quality_report.inception_score
  assert quality_report.inception_score_over_splits(probs, 1) == pytest.approx((score(probs), 0.0), rel=1e-9)
  shuffled = probs[np.random.default_rng(quality_report.SPLIT_ORDER_SEED).permutation(83)]
  parts = [score(shuffled[:28]), score(shuffled[28:56]), score(shuffled[56:])]
  expected = (np.mean(parts), np.std(parts))
  assert quality_report.inception_score_over_splits(probs, 3) == pytest.approx(expected, rel=1e-9)
  for splits in (0, 84):
    with pytest.raises(ValueError, match=f"eval.inception_score_splits={splits} must be between 1 and the "
                                         f"number of samples \\(83\\)"):
      quality_report.inception_score_over_splits(probs, splits)
  space = feature_spaces.FeatureSpace("onehot", lambda x: (x, x))
  out = quality_report.report(space, probs, probs, probs, kid_subsets=2, kid_subset_size=40, prdc_k=3,
                              inception_score_splits=3)
  for suffix in ("", "_floor"):
    assert (out[f"inception_score{suffix}"], out[f"inception_score_std{suffix}"]) == pytest.approx(expected)


def test_inception_score_parts_of_class_runs_hold_every_class():
  """A conditional model's samples come in class runs (10 classes, chunks of 50: runs of 5). Confident,
  correct predictions score 10 on the whole set, and each of 10 parts should score nearly that too, not
  the 5 of parts that each hold half of the classes (every 10th sample of runs of 5)."""
  labels = np.tile(conditioning.class_runs(50, 10), 100)
  mean, std = quality_report.inception_score_over_splits(np.eye(10)[labels], 10)
  assert 9.8 < mean <= 10.0 and std < 0.1


def test_class_accuracy():
  probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
  assert quality_report.class_accuracy(probs, np.array([0, 1, 1, 1])) == 0.75


def test_report_judges_samples_against_the_floor():
  rng = np.random.default_rng(0)
  reference, floor = rng.normal(size=(2000, 3)), rng.normal(size=(1000, 3))
  good, shifted = rng.normal(size=(1000, 3)), rng.normal(size=(1000, 3)) + np.array([5.0, 0.0, 0.0])
  settings = dict(kid_subsets=20, kid_subset_size=500, prdc_k=5)
  out_good = quality_report.report(feature_spaces.raw(), good, reference, floor, **settings)
  out_bad = quality_report.report(feature_spaces.raw(), shifted, reference, floor, **settings)
  assert out_good["feature_space"] == "raw" and out_good["num_samples"] == 1000
  assert out_good["num_reference"] == 2000 and out_good["floor_num_samples"] == 1000
  # Same distribution: the samples score like the floor (FD ~ D (1/N + 1/M) bias, ~0.005 here).
  assert out_good["fd"] < 0.05 and out_good["fd_floor"] < 0.05
  # A mean shift of 5 along one axis: FD = 25 up to sampling noise.
  assert out_bad["fd"] == pytest.approx(25.0, rel=0.05)
  assert out_bad["fd_floor"] == out_good["fd_floor"]  # the floor does not depend on the samples
  assert out_bad["kid"] > 10 * max(out_good["kid"], out_good["kid_std"])
  assert out_bad["precision"] < 0.1 and out_good["precision"] > 0.8
  assert out_bad["coverage"] < 0.1 and out_good["coverage"] > 0.8
  assert "inception_score" not in out_good  # raw features have no classifier


def test_report_scores_the_class_accuracy_of_labelled_samples_and_of_the_floor():
  """A classifier space that calls x[:, 0] > 0 class 1: samples drawn for labels 0, 1 score the fraction
  on the right side; the floor's accuracy is on its own labels; no labels, or a classifier whose classes
  are not the data's (Inception's ImageNet classes), no accuracy."""
  space = feature_spaces.FeatureSpace(
      "sign", lambda x: (x, np.stack([x[:, 0] <= 0, x[:, 0] > 0], axis=1).astype(np.float64)),
      classes_are_data_labels=True)
  rng = np.random.default_rng(3)
  samples = rng.normal(size=(400, 2)) + np.array([2.0, 0.0])  # all but ~2% on the class-1 side
  sample_labels = np.repeat([0, 1], 200)
  floor = rng.normal(size=(400, 2))
  floor_labels = (floor[:, 0] > 0).astype(int)
  settings = dict(kid_subsets=4, kid_subset_size=100, prdc_k=5)
  out = quality_report.report(space, samples, floor, floor, labels=(sample_labels, floor_labels), **settings)
  assert (out["class_accuracy"] == np.mean((samples[:, 0] > 0) == sample_labels)
          == pytest.approx(0.5, abs=0.02))
  assert out["class_accuracy_floor"] == 1.0
  assert "class_accuracy" not in quality_report.report(space, samples, floor, floor, **settings)
  other_classes = dataclasses.replace(space, classes_are_data_labels=False)
  assert not any(k.startswith("class_accuracy") for k in quality_report.report(
      other_classes, samples, floor, floor, labels=(sample_labels, floor_labels), **settings))


def test_resolve_feature_space_names():
  assert feature_spaces.resolve_name("auto", "toy2d", "points") == "raw"
  assert feature_spaces.resolve_name("auto", "digits", "image") == "digits"
  assert feature_spaces.resolve_name("auto", "cifar10", "image") == "none"
  assert feature_spaces.resolve_name("inception_v3", "cifar10", "image") == "inception_v3"
  with pytest.raises(ValueError, match="unknown eval.feature_space 'fid'"):
    feature_spaces.resolve_name("fid", "digits", "image")


@pytest.mark.parametrize("trained_in", ["float32", "bfloat16"])
def test_exported_classifier_gives_the_networks_features_and_probabilities(tmp_path, trained_in):
  """In float32 whatever dtype it trained in (a classifier exported from a bfloat16 run computed every
  later run's FD-digits in bfloat16: the floor 39.7165 -> 39.7271)."""
  config = ClassifierConfig(num_classes=10, num_levels=17, channels=(4, 8, 8), features=16)
  model = ConvClassifier(config)
  config = dataclasses.replace(config, compute_dtype=trained_in)
  images = np.random.default_rng(1).integers(0, 17, size=(6, 8, 8, 1))
  params = model.init(jax.random.key(0), images)["params"]
  feature_spaces.export_classifier(tmp_path, params, config, {"input_shape": [8, 8, 1]})
  assert feature_spaces.classifier_is_exported(tmp_path)
  assert json.loads((tmp_path / feature_spaces.CLASSIFIER_INFO).read_text())["model"]["features"] == 16
  space = feature_spaces.classifier_space(tmp_path, "digits", (8, 8, 1), 17)
  space = feature_spaces.FeatureSpace(space.name, space.apply, batch_size=4)  # two batches
  feats, probs = space.embed(images)
  expected = model.apply({"params": params}, images, method=ConvClassifier.features)
  np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(probs, jax.nn.softmax(model.apply({"params": params}, images)), rtol=1e-5)
  assert feats.shape == (6, 16) and np.all(feats >= 0)
  with pytest.raises(ValueError, match="reads 17-level images; this data has 256 levels"):
    feature_spaces.classifier_space(tmp_path, "digits", (8, 8, 1), 256)
  with pytest.raises(ValueError, match=r"reads images of shape \(8, 8, 1\)"):
    feature_spaces.classifier_space(tmp_path, "digits", (28, 28, 1), 17)


def test_shipped_digits_classifier_is_accurate_and_defines_its_recorded_floor():
  # The network behind every FD-digits number: what its model.json states must hold on this machine.
  config = classifier.default_config()
  dataset = data_lib.load_dataset(config.data)
  space = feature_spaces.classifier_space(feature_spaces.DIGITS_CLASSIFIER, "digits", dataset.spec.shape,
                                          dataset.spec.num_levels)
  info = json.loads((feature_spaces.DIGITS_CLASSIFIER / feature_spaces.CLASSIFIER_INFO).read_text())
  test = dataset.test[np.arange(len(dataset.test))]
  accuracy = np.mean(np.argmax(space.embed(test["x"])[1], -1) == test["label"])
  assert accuracy >= 0.97 and abs(accuracy - info["test_accuracy"]) <= 1 / len(test["x"])
  # float32 rounding of the features on another CPU moves the floor by far less than a retrained network.
  assert classifier.data_floor_fd(space, dataset) == pytest.approx(info["fd_digits_floor"], rel=1e-4)


def test_train_and_export_records_accuracy_and_floor_of_the_exported_network(tmp_path, monkeypatch):
  config = load_config("digits_classifier", "tiny")
  # A --out that holds anything but an export is refused before training: it was replaced, and its files
  # deleted (e.g. a parent folder given by mistake).
  (tmp_path / "mine").mkdir()
  (tmp_path / "mine" / "notes.txt").write_text("precious")
  with pytest.raises(ValueError, match=r"mine' exists and is not a classifier export .* choose another"):
    classifier.train_and_export(tmp_path / "mine", tmp_path / "run", config)
  assert (tmp_path / "mine" / "notes.txt").read_text() == "precious" and not (tmp_path / "run").exists()
  shutil.rmtree(tmp_path / "mine")
  # An export interrupted while it computes the floor leaves the earlier export as it was.
  (tmp_path / "export").mkdir()
  (tmp_path / "export" / feature_spaces.CLASSIFIER_INFO).write_text("the earlier export")
  with monkeypatch.context() as patched:
    patched.setattr(classifier, "data_floor_fd", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
      classifier.train_and_export(tmp_path / "export", tmp_path / "run", config)
  assert [p.name for p in (tmp_path / "export").iterdir()] == [feature_spaces.CLASSIFIER_INFO]
  assert (tmp_path / "export" / feature_spaces.CLASSIFIER_INFO).read_text() == "the earlier export"
  info = classifier.train_and_export(tmp_path / "export", tmp_path / "run", config)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "run"]  # nothing set aside is left
  exported = json.loads((tmp_path / "export" / feature_spaces.CLASSIFIER_INFO).read_text())
  assert exported["train_steps"] == config.train.num_steps and exported["config"] == "a given config"
  assert exported["fd_digits_floor"] == info["fd_digits_floor"] > 0 and 0 <= exported["test_accuracy"] <= 1
  dataset = data_lib.load_dataset(config.data)
  space = feature_spaces.classifier_space(tmp_path / "export", "digits", (8, 8, 1), 17)
  assert classifier.data_floor_fd(space, dataset) == info["fd_digits_floor"]  # same network, same program
