"""Class conditioning of the VAE, GAN and PixelCNN families (the diffusion family's, with guidance, is in
tests/diffusion/test_conditioning.py): the networks read their labels and refuse to run without them,
the projection discriminator is the stated inner product, and a conditional model learns what only the
label tells it — on data whose class fixes the image, its likelihood falls far below the log 2 nats that
bound any model ignoring the label."""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gm_jax import data as data_lib
from gm_jax import tasks
from gm_jax.data.dataset import Dataset, DataSpec
from gm_jax.data.pipeline import ArraySource
from gm_jax.models import labels as labels_lib
from gm_jax.models.dcgan import DCGANDiscriminator, DCGANGenerator
from gm_jax.models.gan_mlp import MLPDiscriminator, MLPGenerator
from gm_jax.tasks import conditioning, pixelcnn, vae
from gm_jax.train.task import split_samples
from tests.conftest import load_config

NUM_CLASSES = 3


def _random_like(shapes, seed=0, scale=0.3):
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda p: jnp.asarray(scale * rng.normal(size=p.shape), jnp.float32), shapes)


def test_label_helpers_refuse_a_mismatch_of_labels_and_classes():
  with pytest.raises(ValueError, match="unconditional network; set model.num_classes"):
    labels_lib.one_hot(jnp.zeros(2, jnp.int32), 0)
  with pytest.raises(ValueError, match="conditioned on 3 classes needs labels"):
    labels_lib.append_one_hot(jnp.zeros((2, 4)), None, 3)
  assert labels_lib.one_hot(None, 0) is None
  h = labels_lib.append_one_hot(jnp.ones((5, 2, 4)), jnp.array([2, 0]), 3)  # (K, B, F): one label per example
  np.testing.assert_array_equal(h[:, :, 4:], np.broadcast_to([[0, 0, 1], [1, 0, 0]], (5, 2, 3)))


def test_mlp_projection_discriminator_is_the_linear_head_plus_the_class_vectors_inner_product():
  disc = MLPDiscriminator((8, 6), num_classes=NUM_CLASSES)
  x, y = jax.random.normal(jax.random.key(0), (5, 2)), jnp.array([0, 1, 2, 1, 0])
  params = _random_like(jax.eval_shape(lambda k: disc.init(k, x, y), jax.random.key(1))["params"])
  h = np.asarray(x)
  for name in ("Dense_0", "Dense_1"):
    pre = h @ np.asarray(params[name]["kernel"]) + np.asarray(params[name]["bias"])
    h = np.where(pre > 0, pre, 0.2 * pre)
  head = h @ np.asarray(params["Dense_2"]["kernel"])[:, 0] + np.asarray(params["Dense_2"]["bias"])[0]
  class_term = np.sum(np.asarray(params["class_projection"]["embedding"])[np.asarray(y)] * h, axis=-1)
  np.testing.assert_allclose(disc.apply({"params": params}, x, y), head + class_term, rtol=1e-5, atol=1e-6)


def test_dcgan_projection_discriminator_reads_the_label_only_through_a_bilinear_class_term():
  disc = DCGANDiscriminator(8, 4, norm="layer", num_classes=NUM_CLASSES)
  x = jax.random.uniform(jax.random.key(2), (3, 8, 8, 1), minval=-1, maxval=1)
  same_x = jnp.broadcast_to(x[:1], x.shape)
  y = jnp.arange(NUM_CLASSES)
  params = _random_like(jax.eval_shape(lambda k: disc.init(k, x, y, train=False),
                                       jax.random.key(3))["params"])
  logits = lambda p: np.asarray(disc.apply({"params": p}, same_x, y, train=False))
  vectors = params["class_projection"]["embedding"]
  zeroed, doubled = ({**params, "class_projection": {"embedding": c * vectors}} for c in (0.0, 2.0))
  unconditional = DCGANDiscriminator(8, 4, norm="layer")
  without = {k: v for k, v in params.items() if k != "class_projection"}
  base = np.asarray(unconditional.apply({"params": without}, same_x, train=False))
  np.testing.assert_allclose(logits(zeroed), base, rtol=1e-6)  # no class vectors: the unconditional critic
  class_terms = logits(params) - base
  assert np.ptp(class_terms) > 1e-2  # one image, a different logit per label
  np.testing.assert_allclose(logits(doubled) - base, 2 * class_terms, rtol=1e-4, atol=1e-6)  # linear in e_y


@pytest.mark.parametrize("generator,z_dim", [(MLPGenerator((8,), 2, num_classes=NUM_CLASSES), 2),
                                             (DCGANGenerator(8, 1, 4, num_classes=NUM_CLASSES), 5)],
                         ids=["mlp", "dcgan"])
def test_conditional_generators_draw_a_different_image_per_label_from_the_same_noise(generator, z_dim):
  z = jnp.broadcast_to(jax.random.normal(jax.random.key(4), (1, z_dim)), (NUM_CLASSES, z_dim))
  y = jnp.arange(NUM_CLASSES)
  variables = generator.init(jax.random.key(5), z, y, train=False)
  out = np.asarray(generator.apply(variables, z, y, train=False)).reshape(NUM_CLASSES, -1)
  assert np.all(np.abs(out[:, None] - out[None]).sum(-1)[~np.eye(NUM_CLASSES, dtype=bool)] > 1e-4)
  with pytest.raises(ValueError, match="needs labels"):
    generator.apply(variables, z, train=False)


def _class_determined_images(num_examples: int = 64) -> Dataset:
  """Two classes of binary 4x4 images, all zeros and all ones: log p(x) <= -log 2 for any model of x
  alone, while p(x | label) can reach 1 (and a convolution needs no position to tell them apart)."""
  patterns = np.stack([np.zeros((4, 4, 1)), np.ones((4, 4, 1))]).astype(np.uint8)
  label = np.arange(num_examples, dtype=np.int32) % 2
  arrays = {"x": patterns[label], "label": label}
  return Dataset("class_determined", ArraySource(arrays), ArraySource(arrays),
                 DataSpec("image", (4, 4, 1), 2))


def _vae_config():
  config = vae.default_config()
  config.model.update(num_classes=2, latent_dims=(2,), hidden=((32,),), decoder="bernoulli")
  config.eval.update(iwae_samples=0)
  return config, "elbo_nll_nats"


def _pixelcnn_config():
  config = pixelcnn.default_config()
  config.model.update(num_classes=2, features=4, num_layers=1, first_kernel=3, head_features=8)
  return config, "nll_nats"


@pytest.mark.parametrize("make_config", [_vae_config, _pixelcnn_config], ids=["vae", "pixelcnn"])
def test_a_conditional_model_learns_what_only_the_label_tells(make_config):
  config, metric = make_config()
  dataset = _class_determined_images()
  task = tasks.build(config, dataset)
  n = len(dataset.train)
  batch = {**dataset.train[np.arange(n)], "index": np.arange(n), "mask": np.ones(n, np.float32)}
  params = {"model": task.init(jax.random.key(0), batch)["model"]["params"]}
  optimizer = optax.adam(1e-2)
  loss_fn = task.updates[0].loss_fn

  def step(carry, key):
    params, state = carry
    grads = jax.grad(lambda p: loss_fn(p, {}, batch, key)[0])(params)
    updates, state = optimizer.update(grads, state, params)
    return (optax.apply_updates(params, updates), state), None

  (params, _), _ = jax.jit(lambda p, keys: jax.lax.scan(step, (p, optimizer.init(p)), keys))(
      params, jax.random.split(jax.random.key(1), 400))
  means = {k: float(s / c) for k, (s, c) in task.eval_fn(params, {}, batch, jax.random.key(2)).items()}
  nll = means[metric] if metric in means else -means["elbo"]
  assert nll < 0.5 * np.log(2)  # any model ignoring the label stays above log 2
  assert tasks.build(config, dataset).sample_labels(4).tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("labels, split, message", [
    ((0, 2), "train", "has train labels from 0 to 2, outside 0 to 1 (model.num_classes=2); set "
                      "model.num_classes=3"),
    ((-1, 1), "test", "has test labels from -1 to 1, outside 0 to 1 (model.num_classes=2); number the "
                      "classes 0 to 1")])
def test_labels_outside_the_classes_of_a_hand_built_dataset_are_refused(labels, split, message):
  """A Dataset built by hand states no class count: a label outside [0, num_classes) would be one-hot
  encoded as no class and trained on unconditioned."""
  dataset = _class_determined_images()
  arrays = dict(getattr(dataset, split).arrays)
  arrays["label"] = np.resize(np.array(labels, np.int32), len(arrays["label"]))
  dataset = dataclasses.replace(dataset, **{split: ArraySource(arrays)})
  config, _ = _vae_config()
  with pytest.raises(ValueError, match=f"^data 'class_determined' {re.escape(message)}$"):
    tasks.build(config, dataset)


@pytest.mark.parametrize("name", ["digits_vae_conditional", "digits_dcgan_conditional",
                                  "digits_pixelcnn_conditional"])
def test_conditional_digits_tasks_draw_their_samples_for_the_labels_they_report(name, monkeypatch):
  """A conditional config's samples come in class runs (Task.sample_labels, read by the class-accuracy
  metric) and each follows its own label: row i is the row i that the same key draws when every label is
  row i's (each row's noise does not depend on the labels), and shifted labels draw other samples."""
  config = load_config(name, "tiny")
  dataset = data_lib.load_dataset(config.data)
  task = tasks.build(config, dataset)
  batch = {**dataset.train[np.arange(2)], "index": np.arange(2), "mask": np.ones(2, np.float32)}
  variables = task.init(jax.random.key(0), batch)
  params = {k: _random_like(v["params"], seed=1, scale=0.2) for k, v in variables.items()}
  state = {k: {c: v for c, v in vs.items() if c != "params"} for k, vs in variables.items()}
  n, key = 20, jax.random.key(2)
  np.testing.assert_array_equal(task.sample_labels(n), np.repeat(np.arange(10), 2))
  draw = lambda: np.asarray(split_samples(task.sample_fn(params, state, key, n))[0])
  first, labels = draw(), task.sample_labels(n)
  class_runs = conditioning.class_runs
  for label in (0, 4, 9):
    monkeypatch.setattr(conditioning, "class_runs", lambda n, count, label=label: np.full(n, label))
    rows = labels == label
    np.testing.assert_allclose(draw()[rows], first[rows], atol=1e-6)
  monkeypatch.setattr(conditioning, "class_runs", lambda n, count: (class_runs(n, count) + 1) % count)
  assert first.shape[0] == n and np.any(draw() != first)


def test_families_without_a_conditional_model_refuse_num_classes():
  config = load_config("digits_realnvp", "tiny")
  config.model.num_classes = 10
  dataset = data_lib.load_dataset(config.data)
  with pytest.raises(ValueError, match="family 'flow' has no class-conditional model; "
                                       "set model.num_classes=0"):
    tasks.build(config, dataset)
  config = load_config("digits_pixelrnn", "tiny")
  config.model.num_classes = 10
  with pytest.raises(ValueError, match="PixelRNN is not class-conditional"):
    tasks.build(config, dataset)
  config = load_config("toy2d_gan", "tiny")
  config.model.num_classes = 3
  with pytest.raises(ValueError, match="conditions on labels, which data .* lacks"):
    tasks.build(config, data_lib.load_dataset(config.data))


@pytest.mark.parametrize("name", ["digits_dcgan_conditional", "digits_classifier"])
@pytest.mark.parametrize("count", [5, 12])
def test_a_class_count_other_than_the_digits_ten_is_refused(name, count):
  """Five classes on the digits' ten labels indexed past the class embeddings: the first step's loss was
  NaN and the run stopped with advice about the learning rate (the classifier trained on with 12)."""
  config = load_config(name, "tiny")
  config.model.num_classes = count
  with pytest.raises(ValueError, match=rf"^data 'digits' has labels up to 9, but model.num_classes={count} "
                                       r".*; set model.num_classes=10$"):
    tasks.build(config, data_lib.load_dataset(config.data))


@pytest.mark.parametrize("name,overrides,expected", [
    ("digits_vae", {}, ""),
    ("digits_vae", {"model.num_classes": 10}, "data given the label"),
    ("digits_vae", {"model.num_classes": 10, "model.decoder": "bernoulli", "data.binarize": True},
     "binarized data given the label"),
    ("digits_pixelcnn", {"model.num_classes": 10}, "data given the label"),
    ("digits_ddpm", {}, ""),
    ("digits_ddpm", {"model.num_classes": 10}, "data given the label"),
])
def test_a_likelihood_given_the_label_says_so(name, overrides, expected):
  """-log p(x | y) lies up to log 10 nats below -log p(x) on digits: the ledger names it, so that it is not
  read beside unconditional models' numbers (it looked like one)."""
  config = load_config(name, "tiny")
  for field, value in overrides.items():
    section, key = field.split(".")
    config[section][key] = value
  assert tasks.build(config, data_lib.load_dataset(config.data)).likelihood.likelihood_of == expected


def test_class_accuracy_is_claimed_only_for_the_digits_own_labels(tmp_path, caplog):
  """The digits classifier's classes are data.name='digits''s labels. The same digits as an .npz with
  other labels (here digit mod 3) were scored against them without a word (real digits: 31 %)."""
  from sklearn.datasets import load_digits

  config = load_config("digits_vae_conditional", "tiny")
  space = tasks.build_feature_space(config, data_lib.load_dataset(config.data))
  assert space.classes_are_data_labels
  digits = load_digits()
  np.savez(tmp_path / "digits.npz", x=digits.images.astype(np.uint8)[..., None],
           label=(digits.target % 3).astype(np.int32))
  config.data.update(name="npz", path=str(tmp_path / "digits.npz"), num_levels=17)
  config.model.num_classes = 3
  config.eval.feature_space = "digits"
  with caplog.at_level("WARNING"):
    space = tasks.build_feature_space(config, data_lib.load_dataset(config.data))
  assert not space.classes_are_data_labels
  assert any("class_accuracy is left out" in r.getMessage() for r in caplog.records)
