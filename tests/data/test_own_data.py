"""Users' own data: image folders, .npy/.npz arrays, and the one-line errors of every data loader."""

from __future__ import annotations

import json
import math
import os
import pathlib
import re
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from gm_jax import data as data_lib
from gm_jax.data import image_folder, text
from gm_jax.data import split as split_lib
from gm_jax.tasks import conditioning
from gm_jax.train.defaults import base_config, load_config_file
from gm_jax.train.workdir import WorkdirConflictError
from tests.conftest import damage_compressed_archive

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "experiments" / "configs"
OWN_DATA_FIELDS = {"path": "", "image_size": 0, "num_levels": 0, "test_fraction": 0.1}


def make_folder(root: pathlib.Path, mode: str = "L", classes: tuple[str, ...] = ("cats", "dogs"),
                per_class: int = 32, size: tuple[int, int] = (8, 8), seed: int = 0) -> dict[str, np.ndarray]:
  """Writes per_class images per class folder (odd ones PNG, even ones JPEG unless RGBA; no classes: in root).

  Returns the pixels written to each PNG (lossless), keyed by path, for exact comparison.
  """
  rng = np.random.default_rng(seed)
  channels = {"L": (), "RGB": (3,), "RGBA": (4,)}[mode]
  written = {}
  for name in classes or ("",):
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(per_class):
      pixels = rng.integers(0, 256, (size[1], size[0], *channels), dtype=np.uint8)
      path = folder / f"{i:03d}.{'png' if i % 2 or mode == 'RGBA' else 'jpg'}"
      Image.fromarray(pixels, mode).save(path)
      if path.suffix == ".png":
        written[str(path)] = pixels.reshape(size[1], size[0], -1)
  return written


def load(name: str, path, **fields) -> data_lib.Dataset:
  config = base_config().data
  config.update({"name": name, "path": str(path), **fields})
  return data_lib.load_dataset(config)


def all_of(source) -> dict[str, np.ndarray]:
  return source[np.arange(len(source))]


# image_folder -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode,channels", [("L", 1), ("RGB", 3)])
def test_image_folder_with_classes(tmp_path, mode, channels):
  written = make_folder(tmp_path / "pets", mode)
  ds = load("image_folder", tmp_path / "pets")
  assert ds.name == "pets"
  assert ds.spec.kind == "image" and ds.spec.shape == (8, 8, channels) and ds.spec.num_levels == 256
  assert ds.spec.extras["class_names"] == ["cats", "dogs"] and ds.spec.extras["num_classes"] == 2
  assert len(ds.train) == 58 and len(ds.test) == 6  # round(64 * 0.1) test images
  assert not set(ds.train.files) & set(ds.test.files)
  for source in (ds.train, ds.test):
    batch = all_of(source)
    assert batch["x"].shape == (len(source), 8, 8, channels) and batch["x"].dtype == np.uint8
    assert batch["label"].dtype == np.int32
    for path, x, label in zip(source.files, batch["x"], batch["label"]):
      assert pathlib.Path(path).parent.name == ds.spec.extras["class_names"][label]
      if path in written:
        np.testing.assert_array_equal(x, written[path])
  # A second read comes from the cache of decoded images and equals a fresh decode.
  fresh = load("image_folder", tmp_path / "pets")
  np.testing.assert_array_equal(all_of(ds.train)["x"], all_of(fresh.train)["x"])


@pytest.mark.parametrize("num_levels", [0, 17])
def test_image_folder_warns_when_its_images_store_small_levels(tmp_path, num_levels, caplog):
  """PNGs that store the digits' levels 0..16 read as nearly black 8-bit images, and data.num_levels=17
  requantizes them to levels 0..1; 8-bit images (make_folder's, 0..255) load without a word."""
  make_folder(tmp_path / "pets", "L", per_class=4)
  (tmp_path / "levels").mkdir()
  for i in range(20):
    Image.fromarray(np.full((8, 8), i % 17, np.uint8)).save(tmp_path / "levels" / f"{i:03d}.png")
  with caplog.at_level("WARNING"):
    load("image_folder", tmp_path / "pets", num_levels=num_levels)
    assert not [r for r in caplog.records if "8-bit" in r.getMessage()]
    load("image_folder", tmp_path / "levels", num_levels=num_levels)
  requantized = "; data.num_levels=17 requantizes them to levels 0..1" if num_levels else ""
  assert [r.getMessage() for r in caplog.records if "8-bit" in r.getMessage()] == [
      f"the first 16 training images in {str(tmp_path / 'levels')!r} hold values only up to 16 of 255, read "
      f"as 8-bit images (nearly black{requantized}); if they store levels 0..16, scale them to 0..255 or "
      f"save them in an .npz with data.num_levels=17 (docs/own_data.md)"]


def test_image_folder_reads_a_class_through_its_linked_subfolders_once(tmp_path):
  """A class folder whose batches are symbolic links to folders elsewhere (pathlib's rglob left them out
  without a word); a link back to the class folder itself is not walked again, nor is an image linked to
  another of the folder's read twice."""
  make_folder(tmp_path / "pets", "L", per_class=4)
  make_folder(tmp_path / "store" / "batch", "L", classes=(), per_class=6, seed=1)
  (tmp_path / "pets" / "cats" / "batch1").symlink_to(tmp_path / "store" / "batch", target_is_directory=True)
  (tmp_path / "pets" / "cats" / "again").symlink_to(tmp_path / "pets" / "cats", target_is_directory=True)
  # And a symbolic and a hard link to one of the class's images (read twice, it could land in both splits).
  first_cat = sorted((tmp_path / "pets" / "cats").glob("*.*g"))[0]
  (tmp_path / "pets" / "cats" / f"zz_copy{first_cat.suffix}").symlink_to(first_cat)
  os.link(first_cat, tmp_path / "pets" / "cats" / f"zz_hard{first_cat.suffix}")
  ds = load("image_folder", tmp_path / "pets", test_fraction=0.25)
  files = list(ds.train.files) + list(ds.test.files)
  cats = [f for f in files if pathlib.Path(f).relative_to(tmp_path / "pets").parts[0] == "cats"]
  assert len(files) == 14 and len(cats) == 10, sorted(files)


@pytest.mark.parametrize("link", ["folder", "hard"])
def test_an_image_linked_into_two_classes_is_refused(tmp_path, link):
  """dogs/linked -> ../cats (or a hard link in dogs/ to a cat's file) put the cats' images in both classes,
  with two labels, in both splits."""
  make_folder(tmp_path / "pets", "L", per_class=4)
  if link == "folder":
    (tmp_path / "pets" / "dogs" / "linked").symlink_to("../cats", target_is_directory=True)
    linked = "dogs/linked/000.jpg"
  else:
    os.link(tmp_path / "pets" / "cats" / "000.jpg", tmp_path / "pets" / "dogs" / "zz.jpg")
    linked = "dogs/zz.jpg"
  with pytest.raises(ValueError, match=rf"image .*pets/cats/000.jpg' is in class folders 'cats' and 'dogs' "
                                       rf"\(through a link, as .*{linked}'\); an image belongs to one class: "
                                       rf"remove the link"):
    load("image_folder", tmp_path / "pets")


@pytest.mark.parametrize("link", ["symbolic", "hard"])
def test_an_image_linked_into_both_train_and_test_is_refused(tmp_path, link):
  """Explicit train/ and test/ folders are scanned one by one; a test image that is a training image's
  file (linked across them) would be scored on data the model was trained on."""
  make_folder(tmp_path / "pets" / "train", "L", classes=(), per_class=4)
  make_folder(tmp_path / "pets" / "test", "L", classes=(), per_class=2, seed=1)
  trained = tmp_path / "pets" / "train" / "001.png"
  linked = tmp_path / "pets" / "test" / "zz.png"
  if link == "symbolic":
    linked.symlink_to(trained)
  else:
    os.link(trained, linked)
  with pytest.raises(ValueError, match=r"image .*test/zz.png' is also the training image .*train/001.png' "
                                       r"\(linked\); a test image must not be trained on: remove it from "
                                       r"train/ or test/"):
    load("image_folder", tmp_path / "pets")


@pytest.mark.parametrize("listing", ["as stored", "reversed"])
def test_a_folder_reached_twice_is_read_through_one_path_whatever_the_listing_order(tmp_path, monkeypatch,
                                                                                     listing):
  """cats/batch and a link cats/latest -> batch: the images are read once, through the path that sorts
  first, however the file system lists the folders (their paths set the split and the fingerprint)."""
  make_folder(tmp_path / "pets", "L", per_class=4)
  make_folder(tmp_path / "pets" / "cats" / "batch", "L", classes=(), per_class=6, seed=1)
  (tmp_path / "pets" / "cats" / "latest").symlink_to("batch", target_is_directory=True)
  walk = image_folder.os.walk

  def walk_in_listing_order(top, **kwargs):
    for directory, subfolders, names in walk(top, **kwargs):
      subfolders[:] = sorted(subfolders, reverse=listing == "reversed")
      yield directory, subfolders, names

  monkeypatch.setattr(image_folder.os, "walk", walk_in_listing_order)
  ds = load("image_folder", tmp_path / "pets", test_fraction=0.25)
  cats = [pathlib.Path(f).relative_to(tmp_path / "pets" / "cats").parts
          for f in ds.train.files + ds.test.files if "cats" in f]
  assert len(cats) == 10 and {p[0] for p in cats if len(p) > 1} == {"batch"}


def test_an_unlistable_folder_or_a_dangling_image_link_is_named(tmp_path, monkeypatch):
  make_folder(tmp_path / "links", "L", per_class=4)
  (tmp_path / "links" / "cats" / "gone.png").symlink_to(tmp_path / "unmounted" / "gone.png")
  with pytest.raises(ValueError, match=r"image .*gone.png' is a symbolic link to .*unmounted/gone.png', "
                                       r"which does not exist; restore its target or delete the link"):
    load("image_folder", tmp_path / "links")
  make_folder(tmp_path / "locked", "L", per_class=4)
  (tmp_path / "locked" / "cats" / "nested").mkdir()
  scandir, locked = os.scandir, str(tmp_path / "locked" / "cats" / "nested")

  def scandir_refusing_nested(path="."):  # as for a folder without read permission (tests may run as root)
    if os.fspath(path) == locked:
      raise PermissionError(13, "Permission denied", locked)
    return scandir(path)

  monkeypatch.setattr(os, "scandir", scandir_refusing_nested)
  with pytest.raises(ValueError, match=r"cannot list folder .*nested' \(Permission denied\); make it "):
    load("image_folder", tmp_path / "locked")


def test_image_folder_too_large_to_cache_decodes_every_read(tmp_path, monkeypatch):
  make_folder(tmp_path, "RGB")
  cached = load("image_folder", tmp_path)
  monkeypatch.setattr(image_folder, "CACHE_BYTES", 0)
  uncached = load("image_folder", tmp_path)
  assert cached.train._cache is not None and uncached.train._cache is None
  for _ in range(2):
    np.testing.assert_array_equal(all_of(uncached.train)["x"], all_of(cached.train)["x"])


def test_image_folder_split_is_fixed_and_independent_of_data_seed(tmp_path):
  make_folder(tmp_path)
  first = load("image_folder", tmp_path, seed=0)
  second = load("image_folder", tmp_path, seed=123)
  assert first.train.files == second.train.files and first.test.files == second.test.files
  assert first.train.files == sorted(first.train.files)
  other = load("image_folder", tmp_path, test_fraction=0.25)
  assert len(other.test) == 16


def test_quality_subsets_of_a_class_sorted_split_hold_every_class(tmp_path):
  make_folder(tmp_path, classes=("a", "b", "c"), per_class=30)
  train = load("image_folder", tmp_path).train
  labels = all_of(train)["label"]
  assert (np.diff(labels) >= 0).all()  # stored class after class, as the files are
  subset = split_lib.fixed_subset(len(train), 30)
  assert (np.diff(subset) > 0).all() and np.array_equal(subset, split_lib.fixed_subset(len(train), 30))
  assert np.bincount(labels[subset], minlength=3).min() >= 5  # a first-30 subset would be class 0 only
  assert np.array_equal(split_lib.fixed_subset(len(train), 1000), np.arange(len(train)))


def test_image_folder_without_classes_and_with_explicit_split(tmp_path):
  make_folder(tmp_path / "flat", classes=(), per_class=20)
  ds = load("image_folder", tmp_path / "flat")
  assert "label" not in ds.train[np.array([0])] and "class_names" not in ds.spec.extras
  assert (len(ds.train), len(ds.test)) == (18, 2)

  make_folder(tmp_path / "split" / "train", "RGB", per_class=6)
  make_folder(tmp_path / "split" / "test", "RGB", classes=("dogs",), per_class=3)
  ds = load("image_folder", tmp_path / "split")
  assert (len(ds.train), len(ds.test)) == (12, 3)
  assert ds.spec.extras["class_names"] == ["cats", "dogs"]
  assert set(all_of(ds.test)["label"]) == {1}
  with pytest.raises(ValueError, match=r"data.test_fraction=0.5 is set, but image folder .* has train/ and "
                                       r"test/, a split of its own"):
    load("image_folder", tmp_path / "split", test_fraction=0.5)


def test_image_folder_resize_and_requantize(tmp_path):
  written = make_folder(tmp_path, classes=(), per_class=10, size=(12, 8))  # non-square: stretched
  Image.fromarray(np.full((8, 12), 200, np.uint8)).save(tmp_path / "constant.png")
  ds = load("image_folder", tmp_path, image_size=4, num_levels=17)
  assert ds.spec.shape == (4, 4, 1) and ds.spec.num_levels == 17
  x = np.concatenate([all_of(ds.train)["x"], all_of(ds.test)["x"]])
  assert x.max() <= 16
  files = ds.train.files + ds.test.files
  constant = x[files.index(str(tmp_path / "constant.png"))]
  assert (constant == 200 * 17 // 256).all()  # levels floor(k * 17 / 256)
  # Shrinking both sides takes the box filter, growing them bicubic, each as Pillow computes it (a
  # constant image alone would not tell the filters apart).
  path, pixels = next(iter(written.items()))
  image = Image.fromarray(pixels[..., 0])
  box = np.asarray(image.resize((4, 4), Image.BOX)).astype(np.int64) * 17 // 256
  np.testing.assert_array_equal(x[files.index(path)][..., 0], box)
  grown = load("image_folder", tmp_path, image_size=16)
  big = np.concatenate([all_of(grown.train)["x"], all_of(grown.test)["x"]])
  bicubic = np.asarray(image.resize((16, 16), Image.BICUBIC))
  np.testing.assert_array_equal(big[(grown.train.files + grown.test.files).index(path)][..., 0], bicubic)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_image_folder_applies_exif_orientation(tmp_path, suffix):
  """A photo stored sideways with EXIF orientation 6 (shown turned 90 degrees clockwise) is read as shown:
  its displayed size matches the others', and its pixels are the stored ones turned."""
  make_folder(tmp_path, mode="RGB", classes=(), per_class=10, size=(12, 8))
  stored = np.random.default_rng(1).integers(0, 256, (12, 8, 3), dtype=np.uint8)  # 8 wide, 12 high
  exif = Image.Exif()
  exif[image_folder.EXIF_ORIENTATION] = 6
  path = tmp_path / f"sideways{suffix}"
  Image.fromarray(stored).save(path, exif=exif)
  ds = load("image_folder", tmp_path)
  assert ds.spec.shape == (8, 12, 3)
  files = ds.train.files + ds.test.files
  x = np.concatenate([all_of(ds.train)["x"], all_of(ds.test)["x"]])[files.index(str(path))]
  np.testing.assert_array_equal(x, np.rot90(np.asarray(Image.open(path)), -1))


def test_image_folder_batches_are_deterministic_and_resumable(tmp_path):
  make_folder(tmp_path)
  ds = load("image_folder", tmp_path)
  it = data_lib.TrainIterator(ds.train, 16, seed=3)
  run = [next(it)["x"] for _ in range(6)]  # 96 examples: crosses the epoch boundary at 58
  again = data_lib.TrainIterator(load("image_folder", tmp_path).train, 16, seed=3)
  np.testing.assert_array_equal(np.stack(run), np.stack([next(again)["x"] for _ in range(6)]))
  resumed = data_lib.TrainIterator(ds.train, 16, seed=3)
  resumed.set_state({"position": 4, "seed": 3, "global_batch_size": 16})
  np.testing.assert_array_equal(next(resumed)["x"], run[4])


# npz --------------------------------------------------------------------------------------------------------

def test_npy_images_are_memory_mapped_with_levels_from_the_dtype(tmp_path):
  x = np.random.default_rng(0).integers(0, 256, (40, 6, 5), dtype=np.uint8)
  np.save(tmp_path / "images.npy", x)
  ds = load("npz", tmp_path / "images.npy")
  assert isinstance(ds.train.arrays["x"], np.memmap)
  assert ds.spec.kind == "image" and ds.spec.shape == (6, 5, 1) and ds.spec.num_levels == 256
  assert (len(ds.train), len(ds.test)) == (36, 4)
  batch = all_of(ds.train)
  np.testing.assert_array_equal(batch["x"][..., 0], x[ds.train.rows])
  assert batch["x"].dtype == np.uint8


@pytest.mark.parametrize("dtype,values,num_levels,expected", [
    (np.uint8, 17, 17, 17),  # declared: the stored values are levels 0..16
    (np.uint8, 2, 0, 256),  # 0/1 masks as uint8: read as 256 levels, with a warning
    (np.uint8, 1, 0, 256),  # all 0: the warning's advice must be a setting that is accepted (not 1)
    (np.uint8, 17, 0, 256),  # levels 0..16 (the digits') as uint8: a warning too
    (np.uint8, 200, 0, 256),  # 8-bit images: no warning
    (np.int32, 17, 0, 17),  # other integer dtypes: largest value + 1
    (bool, 2, 0, 2),
])
def test_npz_image_levels(tmp_path, dtype, values, num_levels, expected, caplog):
  x = (np.arange(30 * 4 * 4 * 3).reshape(30, 4, 4, 3) % values).astype(dtype)
  np.savez(tmp_path / "a.npz", x=x)
  with caplog.at_level("WARNING"):
    ds = load("npz", tmp_path / "a.npz", num_levels=num_levels)
  assert ds.spec.num_levels == expected and ds.spec.shape == (4, 4, 3)
  assert all_of(ds.test)["x"].dtype == np.uint8
  warned = [r.getMessage() for r in caplog.records if "read as 256 levels" in r.getMessage()]
  high = values - 1
  assert warned == ([f"x is uint8 with values only up to {high}, read as 256 levels (nearly black images; "
                     f"bits/dim over 256 levels); if its values are levels 0..{high}, set "
                     f"data.num_levels={max(values, 2)}"] if expected == 256 and high < 64 else [])


def test_npz_points_labels_and_explicit_test_split(tmp_path):
  rng = np.random.default_rng(0)
  np.savez(tmp_path / "p.npz", x=rng.normal(size=(50, 3)), label=np.arange(50) % 4,
           x_test=rng.normal(size=(7, 3)), label_test=np.arange(7) % 4)
  ds = load("npz", tmp_path / "p.npz")
  assert ds.spec.kind == "points" and ds.spec.shape == (3,) and not ds.spec.is_discrete
  assert (len(ds.train), len(ds.test)) == (50, 7)
  test = all_of(ds.test)
  assert test["x"].dtype == np.float32 and test["label"].dtype == np.int32
  np.testing.assert_array_equal(test["label"], np.arange(7) % 4)
  # A test class that no training example has (as a test class folder without a train folder).
  np.savez(tmp_path / "untrained.npz", x=rng.normal(size=(50, 3)), label=np.arange(50) % 4 * 2,
           x_test=rng.normal(size=(7, 3)), label_test=np.arange(7))
  with pytest.raises(ValueError, match=r"label_test holds class 1, which no training example in label "
                                       r"has: a model cannot learn it; add training examples of it to x and "
                                       r"label, or drop those test rows$"):
    load("npz", tmp_path / "untrained.npz")
  with pytest.raises(ValueError, match=r"data.test_fraction=0.3 is set, but .* holds x_test, a split of its "
                                       r"own"):
    load("npz", tmp_path / "p.npz", test_fraction=0.3)


# training through the trainer -------------------------------------------------------------------------------

def _replace_a_png(path: pathlib.Path) -> None:
  Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(sorted(path.rglob("*.png"))[0])


def _rename_in_latin1(path: pathlib.Path) -> None:
  """Names in another encoding than UTF-8 (old archives): Python holds their byte 0xe9 as a surrogate."""
  for png in sorted(path.rglob("*.png")):
    png.rename(png.with_name(os.fsdecode(b"caf\xe9_") + png.name))


def _edit_npz(path: pathlib.Path) -> None:
  np.savez(path, x=np.load(path)["x"] + 1)


def _edit_corpus(path: pathlib.Path) -> None:
  path.write_text(path.read_text().replace("b", "a", 1))


def _edit_npy(path: pathlib.Path) -> None:
  np.save(path, np.load(path) + 1)


def _own_data(folder: pathlib.Path, name: str) -> pathlib.Path:
  folder.mkdir()
  x = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
  if name == "image_folder":
    make_folder(folder, per_class=8)
    return folder
  if name in ("npz", "npy"):
    np.savez(folder / "data.npz", x=x) if name == "npz" else np.save(folder / "data.npy", x)
    return folder / f"data.{name}"
  (folder / "corpus.txt").write_text("abcab " * 200)
  return folder / "corpus.txt"


@pytest.mark.parametrize("name,edit", [("image_folder", _replace_a_png), ("image_folder", _rename_in_latin1),
                                       ("npz", _edit_npz),
                                       ("npy", _edit_npy), ("text", _edit_corpus)])
def test_own_data_training_split_has_a_fingerprint_that_its_contents_change(tmp_path, name, edit):
  """A resumed run compares it (gm_jax.data.pipeline.TrainIterator) when the example count is unchanged;
  the same data in another place gives the same one."""
  path = _own_data(tmp_path / "here", name)
  loader, fields = ("text", {"context": 8}) if name == "text" else ("image_folder" if name == "image_folder"
                                                                    else "npz", {})
  fingerprint = lambda path: data_lib.pipeline.fingerprint(load(loader, path, **fields).train)
  before = fingerprint(path)
  assert before and fingerprint(path) == before
  shutil.copytree(tmp_path / "here", tmp_path / "elsewhere")
  assert fingerprint(tmp_path / "elsewhere" / path.relative_to(tmp_path / "here")) == before
  edit(path)
  assert fingerprint(path) != before


def test_a_corpus_held_out_tail_has_a_fingerprint_too(tmp_path):
  """The processes of a launch compare both splits' fingerprints: corpora that differ only in their last
  tenth would otherwise be evaluated as a mixture."""
  path = tmp_path / "corpus.txt"
  path.write_text("abcab " * 200)
  before = load("text", path, context=8)
  path.write_text("abcab " * 199 + "bacab ")
  after = load("text", path, context=8)
  fingerprint = data_lib.pipeline.fingerprint
  assert fingerprint(after.train) == fingerprint(before.train)
  assert fingerprint(before.test) and fingerprint(after.test) != fingerprint(before.test)


def train_summary(config_name: str, workdir: pathlib.Path, **data_fields) -> dict:
  """Trains a few steps of `<config_name>:tiny` on the given data; returns summary.json."""
  from gm_jax import tasks

  tasks.train(own_data_config(config_name, **data_fields), str(workdir))
  return json.loads((workdir / "summary.json").read_text())


def own_data_config(config_name: str, **data_fields):
  """`<config_name>:tiny` on the given data, for a few steps without evaluations or samples between."""
  config = load_config_file(CONFIGS / f"{config_name}.py", "tiny")
  config.unlock()
  for name, default in OWN_DATA_FIELDS.items():  # the fields the launcher configs need to declare
    if name not in config.data:
      config.data[name] = default
  config.data.update(data_fields)
  config.train.num_steps = 3
  config.train.checkpoint_every = 3
  config.train.eval_every = 0
  config.train.sample_every = 0
  config.train.num_samples = 0
  config.train.progress_bar = False
  if "iwae_samples" in config.eval:
    config.eval.iwae_samples = 4
    config.eval.iwae_chunk = 4
  return config


def test_vae_trains_on_an_image_folder(tmp_path):
  make_folder(tmp_path / "pets")
  summary = train_summary("digits_vae", tmp_path / "run", name="image_folder", path=str(tmp_path / "pets"),
                          num_levels=17)
  assert summary["step"] == 3 and math.isfinite(summary["nll_nats"])
  before = sorted(p for p in (tmp_path / "pets").rglob("*"))
  for workdir in (tmp_path / "pets", tmp_path / "pets" / "cats" / "run"):  # its samples would join the data
    with pytest.raises(WorkdirConflictError, match=f"workdir {workdir} lies inside data.path "
                                                         f"{tmp_path / 'pets'}, so the run's files would"):
      train_summary("digits_vae", workdir, name="image_folder", path=str(tmp_path / "pets"), num_levels=17)
  assert sorted(p for p in (tmp_path / "pets").rglob("*")) == before


def test_vae_trains_on_npz_images(tmp_path):
  x = np.random.default_rng(0).integers(0, 17, (200, 8, 8, 1), dtype=np.uint8)
  np.savez(tmp_path / "images.npz", x=x)
  summary = train_summary("digits_vae", tmp_path / "run", name="npz", path=str(tmp_path / "images.npz"),
                          num_levels=17)
  assert math.isfinite(summary["nll_nats"])


def test_gmm_trains_on_npz_points(tmp_path):
  from gm_jax import tasks

  rng = np.random.default_rng(0)
  centres = np.array([[-2.0, 0.0], [2.0, 0.0]])
  np.savez(tmp_path / "points.npz", x=centres[rng.integers(0, 2, 2000)] + 0.1 * rng.normal(size=(2000, 2)))
  summary = train_summary("toy2d_gmm", tmp_path / "run", name="npz", path=str(tmp_path / "points.npz"))
  assert math.isfinite(summary["nll_nats"]) and "entropy_nats" not in summary
  # As many points, other ones: evaluating or sampling the run would judge it on (or decode it with, for a
  # corpus's vocabulary) data it was not trained on, as resuming would; all three are refused.
  np.savez(tmp_path / "points.npz", x=centres[rng.integers(0, 2, 2000)] + 0.1 * rng.normal(size=(2000, 2)))
  config = own_data_config("toy2d_gmm", name="npz", path=str(tmp_path / "points.npz"))
  for run in (tasks.evaluate, tasks.sample):
    with pytest.raises(ValueError, match="the training split's examples differ .* use the original data"):
      run(config, str(tmp_path / "run"))


# one-line errors --------------------------------------------------------------------------------------------

def _write_png16_rgb(path: pathlib.Path, pixels_HW3: np.ndarray) -> None:
  """A 16-bit RGB PNG (colour type 2, bit depth 16), which Pillow cannot write."""
  h, w, _ = pixels_HW3.shape
  rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels_HW3)
  chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data
                              + struct.pack(">I", zlib.crc32(kind + data)))
  path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                   + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_image_folder_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="image folder .*nowhere.* does not exist; set data.path"):
    load("image_folder", tmp_path / "nowhere")
  (tmp_path / "file.png").write_bytes(b"")
  with pytest.raises(ValueError, match="is a file, but data.name='image_folder' expects a folder"):
    load("image_folder", tmp_path / "file.png")
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="holds no PNG or JPEG images"):
    load("image_folder", tmp_path / "empty")
  with pytest.raises(ValueError, match="needs data.path"):
    load("image_folder", "")

  make_folder(tmp_path / "sizes", classes=(), per_class=4)
  Image.fromarray(np.zeros((10, 12), np.uint8)).save(tmp_path / "sizes" / "wide.png")
  with pytest.raises(ValueError, match=r"one size: .*000.jpg' is 8x8 but .*wide.png' is 12x10"):
    load("image_folder", tmp_path / "sizes")

  make_folder(tmp_path / "modes", classes=(), per_class=4)
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "modes" / "colour.png")
  with pytest.raises(ValueError, match=r"one mode: .*000.jpg' is L but .*colour.png' is RGB"):
    load("image_folder", tmp_path / "modes")

  make_folder(tmp_path / "alpha", "RGBA", classes=(), per_class=3)
  with pytest.raises(ValueError, match="alpha channel .*convert the images to RGB"):
    load("image_folder", tmp_path / "alpha")

  (tmp_path / "deep").mkdir()  # 16-bit RGB, which Pillow opens as 8-bit RGB (the high bytes)
  for i in range(4):
    _write_png16_rgb(tmp_path / "deep" / f"{i}.png", np.full((4, 4, 3), 1000 * i + 300, np.uint16))
  with pytest.raises(ValueError, match=r"0.png' has mode 'RGB with 16 bits per channel'; only 8-bit grey"):
    load("image_folder", tmp_path / "deep")

  make_folder(tmp_path / "broken", classes=(), per_class=4)
  (tmp_path / "broken" / "bad.png").write_bytes(b"not an image")
  with pytest.raises(ValueError, match=r"cannot read image .*bad.png"):
    load("image_folder", tmp_path / "broken")

  make_folder(tmp_path / "few", classes=(), per_class=3)
  with pytest.raises(ValueError, match="has 3 images: too few for a train/test split"):
    load("image_folder", tmp_path / "few")

  make_folder(tmp_path / "mixed", classes=("cats",), per_class=4)
  make_folder(tmp_path / "mixed", classes=(), per_class=2)
  with pytest.raises(ValueError, match="holds both images and class subfolders"):
    load("image_folder", tmp_path / "mixed")
  make_folder(tmp_path / "hollow", per_class=4)
  (tmp_path / "hollow" / "birds").mkdir()
  with pytest.raises(ValueError, match=r"class folder .*birds' holds no PNG or JPEG images"):
    load("image_folder", tmp_path / "hollow")

  make_folder(tmp_path / "half" / "train", classes=(), per_class=3)
  with pytest.raises(ValueError, match="has a train folder but no test folder"):
    load("image_folder", tmp_path / "half")

  make_folder(tmp_path / "half" / "test", classes=(), per_class=3)
  make_folder(tmp_path / "half" / "val", classes=(), per_class=3)  # would be silently left out
  with pytest.raises(ValueError, match="so 'val' beside them would not be read; move it into train/"):
    load("image_folder", tmp_path / "half")
  (tmp_path / "half" / "val").rename(tmp_path / "half" / ".val")  # hidden folders and other files are ignored
  (tmp_path / "half" / "notes.txt").write_text("")
  assert len(load("image_folder", tmp_path / "half").train) == 3


@pytest.mark.parametrize("split,remedy", [
    # Re-saved or deleted, a training image changes the data the run's checkpoints resume on.
    ("train", r"re-save or delete it, then train in a new --workdir \(a changed training image"),
    ("test", r"re-save or delete it and rerun the same command$")])
def test_truncated_image_is_named_when_read_with_what_its_split_needs(tmp_path, split, remedy):
  make_folder(tmp_path, classes=(), per_class=40)  # 4 test images, all PNG
  ds = load("image_folder", tmp_path)
  files = getattr(ds, split).files
  # Past the training images that loading decodes to check their levels (those fail at loading).
  files = files[image_folder.LEVEL_PROBE:] if split == "train" else files
  path = next(pathlib.Path(f) for f in files if f.endswith(".png"))
  path.write_bytes(path.read_bytes()[:60])  # the PNG header survives, the pixels do not
  ds = load("image_folder", tmp_path)
  with pytest.raises(ValueError, match=rf"cannot read image '{path}' \(.*\); {remedy}"):
    all_of(getattr(ds, split))


def test_npz_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist; set data.path to a .npy or .npz file"):
    load("npz", tmp_path / "missing.npz")
  with pytest.raises(ValueError, match="is a folder, but data.name='npz' expects a .npy or .npz file"):
    load("npz", tmp_path)
  np.savez(tmp_path / "no_x.npz", images=np.zeros((4, 2)))
  with pytest.raises(ValueError, match=r"arrays \['images'\] that data.name='npz' does not read"):
    load("npz", tmp_path / "no_x.npz")
  np.savez(tmp_path / "only_labels.npz", label=np.zeros(4, np.int32))
  with pytest.raises(ValueError, match="has no array 'x'"):
    load("npz", tmp_path / "only_labels.npz")
  (tmp_path / "garbage.npy").write_bytes(b"not an array")
  with pytest.raises(ValueError, match=r"cannot read .*garbage.npy' as .npy \(not a NumPy .npy file\)"):
    load("npz", tmp_path / "garbage.npy")
  with open(tmp_path / "one_array.npz", "wb") as f:  # np.save keeps a file object's name
    np.save(f, np.zeros((10, 2)))
  with pytest.raises(ValueError, match=r"one_array.npz' holds np.save's one array, a .npy file; rename it to "
                                       r"one_array.npy"):
    load("npz", tmp_path / "one_array.npz")
  np.savez(tmp_path / "archive.npz", x=np.zeros((10, 2)))
  (tmp_path / "archive.npz").rename(tmp_path / "archive.npy")
  with pytest.raises(ValueError, match=r"archive.npy' holds an archive of np.savez, a .npz file; rename it "
                                       r"to archive.npz"):
    load("npz", tmp_path / "archive.npy")
  np.savez_compressed(tmp_path / "damaged.npz", x=np.zeros((10, 2)))
  damage_compressed_archive(tmp_path / "damaged.npz")
  with pytest.raises(ValueError, match=r"cannot read .*damaged.npz' as .npz \(damaged compressed data: "):
    load("npz", tmp_path / "damaged.npz")
  (tmp_path / "text.npz").write_text("not an archive\n")  # NumPy's own message suggested allow_pickle
  with pytest.raises(ValueError, match=r"cannot read .*text.npz' as .npz \(not a NumPy .npz file\)"):
    load("npz", tmp_path / "text.npz")
  np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}] * 4))
  with pytest.raises(ValueError, match=r"array 'x' of .*objects.npz' holds Python objects .*save numeric"):
    load("npz", tmp_path / "objects.npz")
  # e.g. a pandas column of class names: named, not taken for a file that is no .npz at all
  names = np.array(["cat", "dog", "cat"], dtype=object)
  np.savez(tmp_path / "names.npz", x=np.zeros((3, 2)), label=names)
  with pytest.raises(ValueError, match=r"array 'label' of .*names.npz' holds Python objects \(dtype "
                                       r"object\), which are not read; save numeric arrays \(labels as "
                                       r"integer class"):
    load("npz", tmp_path / "names.npz")
  np.savez(tmp_path / "labels.npz", x=np.zeros((10, 2)), label=np.zeros(9, np.int32))
  # A check of the arrays names their file too.
  with pytest.raises(ValueError, match=r"labels.npz': label has shape \(9,\) but x holds 10 examples"):
    load("npz", tmp_path / "labels.npz")
  np.save(tmp_path / "float_images.npy", np.zeros((10, 4, 4), np.float32))
  with pytest.raises(ValueError, match="float images are not read; quantize them .* or flatten them"):
    load("npz", tmp_path / "float_images.npy")
  np.save(tmp_path / "one_image.npy", np.zeros((32, 32, 3), np.uint8))  # one RGB image, no example axis
  with pytest.raises(ValueError, match=r"shape \(32, 32, 3\), which reads as 32 grey images 32 x 3 pixels; "
                                       r".* for one image save x\[None\], for colour images \(N, H, W, C\)"):
    load("npz", tmp_path / "one_image.npy")
  np.save(tmp_path / "tiny.npy", np.zeros((3, 2)))
  with pytest.raises(ValueError, match="has 3 examples: too few for a train/test split"):
    load("npz", tmp_path / "tiny.npy")
  np.save(tmp_path / "levels.npy", np.full((10, 2, 2), 20, np.uint8))
  with pytest.raises(ValueError, match="values up to 20 but data.num_levels=17"):
    load("npz", tmp_path / "levels.npy", num_levels=17)
  for x_test in (np.full((4, 2, 2), 300), np.full((4, 2, 2), -1)):  # int64 beside uint8 x: cast would wrap
    np.savez(tmp_path / "wide_test.npz", x=np.zeros((10, 2, 2), np.uint8), x_test=x_test)
    with pytest.raises(ValueError, match="x_test holds values up to 300, beyond the 256 levels|negative"):
      load("npz", tmp_path / "wide_test.npz")
  np.savez(tmp_path / "bool_x.npz", x=np.zeros((10, 2, 2), bool), x_test=np.full((4, 2, 2), 255))
  with pytest.raises(ValueError, match="x_test holds values up to 255, beyond the 2 levels of x"):
    load("npz", tmp_path / "bool_x.npz")
  np.savez(tmp_path / "negative.npz", x=np.zeros((10, 2)), label=np.arange(10) - 1)
  with pytest.raises(ValueError, match="label holds the negative label -1; labels are class indices"):
    load("npz", tmp_path / "negative.npz")
  np.savez(tmp_path / "no_test.npz", x=np.zeros((10, 2)), x_test=np.zeros((0, 2)))
  with pytest.raises(ValueError, match="has an empty test split; give it examples"):
    load("npz", tmp_path / "no_test.npz")
  for bad in (np.nan, np.inf):
    points = np.zeros((10, 2), np.float32)
    points[7, 1] = bad
    np.save(tmp_path / "nan.npy", points)
    with pytest.raises(ValueError, match=r"x holds non-finite values \(first in row 7\)"):
      load("npz", tmp_path / "nan.npy")
    np.savez(tmp_path / "nan_test.npz", x=np.zeros((10, 2)), x_test=points)
    with pytest.raises(ValueError, match=r"x_test holds non-finite values \(first in row 7\)"):
      load("npz", tmp_path / "nan_test.npz")
  points = np.zeros((10, 2))  # float64, finite, but infinite as the float32 the points are delivered as
  points[7, 0] = 1e300
  np.save(tmp_path / "large.npy", points)
  with pytest.raises(ValueError, match=r"x holds values beyond float32's range \(3.4e38\) \(first in row "
                                       r"7\)"):
    load("npz", tmp_path / "large.npy")


@pytest.mark.parametrize("num_classes", [3, 4, 10])
def test_num_classes_must_equal_the_label_count_of_own_data(tmp_path, num_classes):
  np.savez(tmp_path / "labelled.npz", x=np.zeros((10, 2)), label=np.arange(10) % 4,
           x_test=np.zeros((4, 2)), label_test=np.array([0, 1, 3, 1]))
  ds = load("npz", tmp_path / "labelled.npz")
  assert ds.spec.extras["num_classes"] == 4
  config = base_config()
  config.model.num_classes = num_classes
  if num_classes == 4:
    assert conditioning.num_classes(config, ds) == 4
  else:
    why = "no class at all" if num_classes == 3 else "classes 4 to 9 would have no data to learn them from"
    with pytest.raises(ValueError, match=rf"up to 3, but model.num_classes={num_classes} \(.*{why}\); set "
                                         rf"model.num_classes=4$"):
      conditioning.num_classes(config, ds)


@pytest.mark.parametrize("fields,message", [
    ({"name": "digits", "path": "/tmp/pets"}, r"data.path is set, but data.name='digits' does not read it "
                                              r"\(it is read for your own data: .*\); set data.path=''$"),
    ({"name": "toy2d", "num_levels": 5}, "data.num_levels is set, but data.name='toy2d' does not read it"),
    ({"name": "npz", "path": "/tmp/x.npz", "crop": 4},
     r"^data.crop is set, but data.name='npz' does not read it \(it crops TFDS image sets\); set "
     r"data.crop=0$"),
    ({"name": "npz", "path": "/tmp/x.npz", "tfds_name": "mnist"},
     "data.tfds_name is set, but data.name='npz'"),
    ({"name": "npz", "path": "/tmp/x.npz", "level": "byte"},
     "data.level is set, but data.name='npz' does not"),
    ({"name": "digits", "data_dir": "/tmp/tfds"},
     "data.data_dir is set, but data.name='digits' does not read"),
    ({"name": "text", "path": "/tmp/corpus.txt"},
     r"data.name='text' needs data.context, which this config lacks .*shakespeare_char_cpu.py$"),
    # Another data source's config given these names: an AttributeError traceback naming one field.
    ({"name": "toy2d"}, r"data.name='toy2d' needs data.distribution, data.geometry, data.num_train, "
                        r"data.num_test, data.entropy_samples, which this config lacks "
                        r"\(data.distribution\); .*toy2d_vae.py$"),
    ({"name": "markov"}, r"data.name='markov' needs data.vocab_size, .*markov_lm.py$")])
def test_own_data_fields_for_a_loader_that_ignores_them_are_refused(fields, message):
  config = base_config().data  # no data.context: not a language-model config
  config.update(fields)
  with pytest.raises(ValueError, match=message):
    data_lib.load_dataset(config)


@pytest.mark.parametrize("name, overridden, refused", [
    ("npz", ["batch_size", "num_train"], "data.num_train is set, but data.name='npz' does not read it (only "
                                         "toy2d data do); drop --config.data.num_train"),
    ("image_folder", ["geometry.radius"], "data.geometry.radius is set, but data.name='image_folder' does "
                                          "not read it (only toy2d data do)"),
    ("digits", ["entropy_samples"], "data.entropy_samples is set, but data.name='digits' does not read it "
                                    "(only toy2d data do)"),
    ("digits", ["context"], "data.context is set, but data.name='digits' does not read it (only markov and "
                            "text data do)"),
    ("text", ["context", "vocab_size"], "data.vocab_size is set, but data.name='text' does not read it "
                                        "(only markov data do)"),
    # Read by the named source, or no generated source's field (those are checked when the data loads).
    ("toy2d", ["num_train", "num_test", "distribution", "geometry.radius", "entropy_samples", "batch_size",
               "path"], None),
    ("markov", ["vocab_size", "num_tokens", "context", "concentration", "seed"], None),
    ("text", ["context", "level"], None)])
def test_overridden_fields_of_another_data_source_are_refused(name, overridden, refused):
  """A toy2d or Markov config switched to other data keeps its own fields; an override of one of them
  beside the new data.name would be ignored, so the launcher refuses it."""
  config = base_config().data
  config.name = name
  if refused is None:
    data_lib.check_overrides_are_read(config, overridden)
  else:
    with pytest.raises(ValueError, match=f"^{re.escape(refused)}"):
      data_lib.check_overrides_are_read(config, overridden)


def test_unknown_data_name_lists_the_own_data_loaders():
  with pytest.raises(ValueError, match="image_folder .*npz"):
    load("folder", "")


# faults of the text and TFDS loaders ------------------------------------------------------------------------

def test_binary_corpus_names_the_file_and_suggests_byte_level(tmp_path):
  path = tmp_path / "blob.bin"
  path.write_bytes(bytes(range(256)) * 8)
  with pytest.raises(ValueError, match=r"blob\.bin' is not UTF-8 text .*set data.level='byte'"):
    text.load(str(path), context=8)
  ds = text.load(str(path), level="byte", context=8)  # the suggested fix works
  assert ds.spec.num_levels == 256 and len(ds.train.tokens) + len(ds.test.tokens) == 2048


def test_directory_as_corpus_says_a_file_is_expected(tmp_path):
  with pytest.raises(ValueError, match="is a directory; set data.path to a text file"):
    text.load(str(tmp_path), context=8)


def test_unknown_tfds_name_is_reported_as_unknown(tmp_path):
  with pytest.raises(ValueError, match="unknown TFDS data set 'no_such_corpus'"):
    text.load(tfds_name="no_such_corpus", context=8, data_dir=str(tmp_path))
  # A known name that is not prepared still says how to build it.
  with pytest.raises(FileNotFoundError, match="tfds build tiny_shakespeare"):
    text.load(tfds_name="tiny_shakespeare", context=8, data_dir=str(tmp_path))
