import numpy as np
import pytest
import tensorflow_datasets as tfds

from gm_jax import data as data_lib
from gm_jax.data import text, tfds_source
from gm_jax.train.defaults import base_config


def data_config(fields: dict):
  config = base_config().data
  config.update(fields)
  return config


@pytest.mark.parametrize("name,shape,levels", [("mnist", (28, 28, 1), 256), ("cifar10", (32, 32, 3), 256),
                                               ("binarized_mnist", (28, 28, 1), 2)])
def test_tfds_image_pipeline_under_mock_data(name, shape, levels):
  with tfds.testing.mock_data(num_examples=24):
    ds = data_lib.load_dataset(data_config({"name": name}))
    it = data_lib.TrainIterator(ds.train, 8, seed=0)
    batches = [next(it) for _ in range(4)]  # crosses an epoch boundary
    eval_count = sum(b["mask"].sum() for b in data_lib.eval_batches(ds.test, 10))
  assert ds.spec.shape == shape and ds.spec.num_levels == levels
  assert batches[0]["x"].shape == (8, *shape) and batches[0]["x"].dtype == np.uint8
  # The label count that model.num_classes is checked against is TFDS's own.
  features = tfds.builder(name).info.features
  assert ds.spec.extras.get("num_classes", 0) == (features["label"].num_classes if "label" in features else 0)
  assert eval_count == len(ds.test)


def test_celeb_a_is_cropped_and_resized_under_mock_data():
  with tfds.testing.mock_data(num_examples=4):
    ds = data_lib.load_dataset(data_config({"name": "celeb_a", "crop": 108, "image_size": 64}))
    batch = ds.train[np.array([0, 1])]
  assert batch["x"].shape == (2, 64, 64, 3)


def test_center_crop_takes_the_middle_then_resizes_bilinearly():
  from PIL import Image

  image = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
  np.testing.assert_array_equal(tfds_source.center_crop_resize(image, 4, 4), image[1:5, 2:6])
  want = np.asarray(Image.fromarray(image[1:5, 2:6]).resize((2, 2), Image.BILINEAR))
  np.testing.assert_array_equal(tfds_source.center_crop_resize(image, 4, 2), want)


@pytest.mark.parametrize("records", [1, 5])
def test_tfds_text_reads_every_record_under_mock_data(records):
  with tfds.testing.mock_data(num_examples=records):
    ds = text.load(tfds_name="tiny_shakespeare", context=4, level="byte")
    as_bytes = lambda t: t if isinstance(t, bytes) else t.encode("utf-8")  # mock records are str
    by_split = [[as_bytes(r["text"]) for r in tfds.data_source("tiny_shakespeare", split=split)]
                for split in ("train", "validation", "test")]
  assert ds.spec.kind == "tokens" and len(ds.train) > 0
  # Each split's records joined by newlines; train trains, validation and test back to back are held out.
  joined = [b"\n".join(stored) for stored in by_split]
  np.testing.assert_array_equal(ds.train.tokens, np.frombuffer(joined[0], np.uint8))
  np.testing.assert_array_equal(ds.test.tokens, np.frombuffer(joined[1] + joined[2], np.uint8))


def test_tfds_text_refuses_a_test_fraction_it_would_ignore():
  with tfds.testing.mock_data(num_examples=2):
    with pytest.raises(ValueError, match=r"data.test_fraction=0.5 is set, but TFDS set 'tiny_shakespeare' "
                                         r"holds out its validation and test splits, a split of its own"):
      text.load(tfds_name="tiny_shakespeare", context=4, level="byte", test_fraction=0.5)


def test_tfds_text_without_a_text_feature_is_one_line():
  with tfds.testing.mock_data(num_examples=2):
    with pytest.raises(ValueError, match=r"TFDS set 'ag_news_subset' has no 'text' feature \(its records "
                                         r"hold \['description', 'label', 'title'\]\)"):
      text.load(tfds_name="ag_news_subset", context=4, level="byte")


class TrainTestText(tfds.core.GeneratorBasedBuilder):
  """A text set with train and test splits and no validation split, as many TFDS text sets have."""
  VERSION = tfds.core.Version("1.0.0")
  code_path = None  # no checksums file to look for (finding this module's path needs importlib_resources)
  RECORDS = {"train": ["first record\n", "second"], "test": ["held-out one"]}

  def _info(self):
    features = tfds.features.FeaturesDict({"text": tfds.features.Text()})
    return tfds.core.DatasetInfo(builder=self, features=features)

  def _split_generators(self, dl_manager):
    return {split: self._generate_examples(records) for split, records in self.RECORDS.items()}

  def _generate_examples(self, records):
    for i, record in enumerate(records):
      yield i, {"text": record * 40}


def test_tfds_text_holds_out_a_prepared_sets_test_split(tmp_path):
  TrainTestText(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
  ds = text.load(tfds_name="train_test_text", data_dir=str(tmp_path), context=4, level="byte")
  # Each split's records in their stored order, joined by newlines; the splits back to back.
  train, test = (b"\n".join(r["text"] for r in tfds.data_source("train_test_text", split=split,
                                                                  data_dir=str(tmp_path)))
                 for split in ("train", "test"))
  # The set's own test split is held out whole, and nothing else: none of it trains.
  assert test.count(b"held-out one") == 40
  np.testing.assert_array_equal(ds.train.tokens, text.ByteTokenizer().encode(train))
  np.testing.assert_array_equal(ds.test.tokens, text.ByteTokenizer().encode(test))


@pytest.mark.parametrize("fields,message", [
    ({"crop": 40}, r"data.crop=40 is larger than mnist's 28x28 images; set data.crop to at most 28"),
    ({"crop": 20}, None)])  # a crop alone keeps its size
def test_tfds_crop_under_mock_data(fields, message):
  with tfds.testing.mock_data(num_examples=4):
    if message:
      with pytest.raises(ValueError, match=message):
        data_lib.load_dataset(data_config({"name": "mnist", **fields}))
    else:
      ds = data_lib.load_dataset(data_config({"name": "mnist", **fields}))
      assert ds.spec.shape == (20, 20, 1) and ds.train[np.array([0, 1])]["x"].shape == (2, 20, 20, 1)


def test_missing_tfds_data_set_offline_is_one_line(tmp_path):
  with pytest.raises(FileNotFoundError) as info:
    data_lib.load_dataset(data_config({"name": "mnist", "data_dir": str(tmp_path)}))
  message = str(info.value)
  assert "\n" not in message and "tfds build mnist" in message
