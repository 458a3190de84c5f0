import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits

from gm_jax.data import digits


def test_digits_split_is_fixed_and_disjoint():
  train, test = digits.load_arrays()
  train2, test2 = digits.load_arrays()
  assert len(train["x"]) + len(test["x"]) == 1797
  assert len(test["x"]) == 300
  assert np.array_equal(test["x"], test2["x"])
  assert train["x"].shape[1:] == (8, 8, 1) and train["x"].dtype == np.uint8
  assert train["x"].max() == 16 and train["x"].min() == 0
  # A partition of scikit-learn's 1,797 (image, label) pairs, which hold no duplicate image: every pair in
  # exactly one split.
  rows = lambda images, labels: sorted(np.asarray(image, np.uint8).tobytes() + bytes([int(label)])
                                       for image, label in zip(images.reshape(len(images), -1), labels))
  source = load_digits()
  assert rows(np.concatenate([train["x"], test["x"]]), np.concatenate([train["label"], test["label"]])) == \
      rows(source.images, source.target)
  flat_train = {row.tobytes() for row in train["x"].reshape(len(train["x"]), -1)}
  assert not any(row.tobytes() in flat_train for row in test["x"].reshape(len(test["x"]), -1))


def test_dataset_spec():
  ds = digits.load()
  assert ds.spec.num_levels == 17 and ds.spec.num_dims == 64 and ds.spec.is_discrete


@pytest.mark.parametrize("from_file", [True, False], ids=["table_file", "load_digits"])
def test_digits_are_scikit_learns_in_its_order(monkeypatch, from_file):
  """Read from the table file, or through load_digits where the file is not found: scikit-learn's images and
  labels, row for row (the fixed split depends on the order)."""
  if from_file:
    assert digits.table_file() is not None, "scikit-learn's digits table is not where digits.table_file looks"
  else:
    monkeypatch.setattr(digits, "table_file", lambda: None)
  source = load_digits()
  table = digits._load_table()
  assert np.array_equal(table[:, :64].reshape(-1, 8, 8), source.images)
  assert np.array_equal(table[:, 64], source.target)


def test_loading_digits_does_not_import_scikit_learn():
  code = ("import sys; from gm_jax.data import digits; digits.load(); "
          "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn'))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
  assert out.strip() == "[]"
