import numpy as np
import pytest
import tensorflow_datasets as tfds

from gm_jax import data as data_lib
from gm_jax.data import text
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
  assert eval_count == len(ds.test)


def test_celeb_a_is_cropped_and_resized_under_mock_data():
  with tfds.testing.mock_data(num_examples=4):
    ds = data_lib.load_dataset(data_config({"name": "celeb_a", "crop": 108, "image_size": 64}))
    batch = ds.train[np.array([0, 1])]
  assert batch["x"].shape == (2, 64, 64, 3)


def test_tiny_shakespeare_text_under_mock_data():
  with tfds.testing.mock_data(num_examples=1):
    ds = text.load(tfds_name="tiny_shakespeare", context=4)
  assert ds.spec.kind == "tokens" and len(ds.train) > 0


def test_missing_tfds_data_set_offline_is_one_line(tmp_path):
  with pytest.raises(FileNotFoundError) as info:
    data_lib.load_dataset(data_config({"name": "mnist", "data_dir": str(tmp_path)}))
  message = str(info.value)
  assert "\n" not in message and "tfds build mnist" in message
