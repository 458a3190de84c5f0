"""A folder of PNG/JPEG images as an image data set (data.name='image_folder', data.path=DIR).

Layouts (files other than .png/.jpg/.jpeg and hidden files or folders are ignored):
  DIR/*.png                                   unlabelled
  DIR/<class>/**/*.png                        `label` = index of <class> in the sorted folder names
  DIR/train/..., DIR/test/...                 an explicit split, each part in one of the layouts above
Without DIR/train and DIR/test, a fixed seeded split holds out data.test_fraction of the images
(see gm_jax.data.split). Paths are sorted, so the example order does not depend on the file system.

Images are read as viewers show them: an EXIF orientation tag (a phone's photo stored sideways) is
applied, and sizes are compared after it. Every image must have the same size and mode: 'L' (grey)
gives 1 channel, 'RGB' 3; the 8-bit files have 256 levels. data.image_size resizes each image to a
square (box filter, i.e. area averaging, when shrinking both sides; bicubic otherwise; non-square
images are stretched) and data.num_levels requantizes the 256 levels to fewer: level k ->
floor(k * num_levels / 256).

Images are read lazily: loading opens only the file headers (to check sizes and modes) and decodes
the first few training images (to check that they hold 8-bit values, not small stored levels), and a
batch decodes its own files. Decoded images are kept in memory after their first read while a split's pixels
fit in CACHE_BYTES, so later epochs of a small folder do not decode again; a larger folder is decoded
on every read, which costs ~0.1 ms per small image on one core (convert it to .npy for speed, see
docs/own_data.md).
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
from absl import logging

from gm_jax.data import split as split_lib
from gm_jax.data.dataset import DataSpec, Dataset
from gm_jax.data.pipeline import digest

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CHANNELS = {"L": 1, "RGB": 3}
CACHE_BYTES = 1 << 30
EXIF_ORIENTATION = 0x0112
TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)  # those that turn the image by 90 degrees: width and height swap


def _is_visible(path: pathlib.Path, root: pathlib.Path) -> bool:
  return not any(part.startswith(".") for part in path.relative_to(root).parts)


def _unreadable(error: OSError):
  raise ValueError(f"cannot list folder {error.filename!r} ({error.strerror}); make it readable or move it "
                   f"out of data.path") from None


def _files_below(folder: pathlib.Path) -> list[pathlib.Path]:
  """Every file below `folder`, through symbolically linked subfolders too (pathlib's rglob skips them,
  which left a class's linked batches out without a word); a folder reached twice (a link to a folder
  already walked) is read once, through the path that sorts first, so that the paths do not depend on
  the order in which the file system lists folders."""
  files, walked = [], set()
  for directory, subfolders, names in os.walk(folder, followlinks=True, onerror=_unreadable):
    real = os.path.realpath(directory)
    if real in walked:
      subfolders.clear()
      continue
    walked.add(real)
    subfolders.sort()
    files += [pathlib.Path(directory) / name for name in names]
  return files


def _images_in(folder: pathlib.Path, recursive: bool) -> list[pathlib.Path]:
  candidates = _files_below(folder) if recursive else folder.iterdir()
  images = sorted(p for p in candidates if p.suffix.lower() in IMAGE_SUFFIXES and _is_visible(p, folder))
  dangling = [p for p in images if p.is_symlink() and not p.exists()]
  if dangling:
    raise ValueError(f"image {str(dangling[0])!r} is a symbolic link to {os.readlink(dangling[0])!r}, which "
                     f"does not exist; restore its target or delete the link")
  # An image linked to another of the folder's (a symbolic or hard link to a file, as folder links are
  # walked once above) is read once, through the path that sorts first: twice, it weighed double and could
  # land in both splits.
  unique, seen = [], set()
  for path in images:
    if path.is_file() and (identity := _file_identity(path)) not in seen:
      seen.add(identity)
      unique.append(path)
  return unique


def _file_identity(path) -> tuple[int, int]:
  """(device, inode) of the file a path leads to: the same for every symbolic or hard link to it."""
  stat = os.stat(path)
  return stat.st_dev, stat.st_ino


def _image_in_both(train_files: list[pathlib.Path], test_files: list[pathlib.Path]):
  """(test path, train path) of the first test image that is a training image's file (a symbolic or hard
  link across train/ and test/, which each split's scan cannot see), or None."""
  train = {_file_identity(path): path for path in train_files}
  return next(((path, train[identity]) for path in test_files if (identity := _file_identity(path)) in train),
              None)


def scan_split(folder: pathlib.Path) -> tuple[list[pathlib.Path], list[str] | None]:
  """(image paths, class name of each path or None when the images lie directly in the folder)."""
  loose = _images_in(folder, recursive=False)
  subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
  per_class = {d.name: _images_in(d, recursive=True) for d in subfolders}
  if loose and any(per_class.values()):
    raise ValueError(f"image folder {str(folder)!r} holds both images and class subfolders; move the images "
                     f"{loose[0].name!r}, ... into class folders or the class folders out")
  if loose:
    return loose, None
  if not per_class or not any(per_class.values()):
    raise ValueError(f"image folder {str(folder)!r} holds no PNG or JPEG images; set data.path to a folder "
                     f"of .png/.jpg files or of class subfolders holding them")
  empty = [name for name, files in per_class.items() if not files]
  if empty:
    raise ValueError(f"class folder {str(folder / empty[0])!r} holds no PNG or JPEG images; add images or "
                     f"remove the folder")
  owner = {}
  for name, paths in per_class.items():
    for path in paths:
      other, first = owner.setdefault(_file_identity(path), (name, path))
      if other != name:  # through a symbolic or hard link: one image, two labels (and maybe both splits)
        raise ValueError(f"image {str(first)!r} is in class folders {other!r} and {name!r} (through a link, "
                         f"as {str(path)!r}); an image belongs to one class: remove the link")
  files = [f for name in per_class for f in per_class[name]]
  classes = [name for name in per_class for _ in per_class[name]]
  return files, classes


def _orientation(image) -> int:
  """The EXIF orientation in the file's header (1: as stored). Read from the header alone: a PNG's eXIf
  chunk after the pixels is not looked for, as Pillow's getexif would decode the whole image to find it."""
  from PIL import Image

  if not image.info.get("exif"):
    return 1
  exif = Image.Exif()
  exif.load(image.info["exif"])
  return exif.get(EXIF_ORIENTATION, 1)


def image_header(path: pathlib.Path) -> tuple[tuple[int, int], str]:
  """(width, height) and Pillow mode of an image file, reading only its header."""
  from PIL import Image

  try:
    with Image.open(path) as image:
      # Pillow opens a 16-bit RGB PNG as mode 'RGB' and keeps the high bytes only; its raw mode tells.
      raw = image.tile[0][3] if image.tile and len(image.tile[0]) > 3 else ""
      raw = raw[0] if isinstance(raw, tuple) and raw else raw
      width, height = image.size
      if _orientation(image) in TRANSPOSING_ORIENTATIONS:
        width, height = height, width
      return (width, height), f"{image.mode} with 16 bits per channel" if ";16" in str(raw) else image.mode
  except Exception as e:  # Pillow raises OSError, SyntaxError or ValueError for broken files
    raise ValueError(f"cannot read image {str(path)!r} ({type(e).__name__}: {e}); delete or re-save "
                     f"the file") from None


def check_headers(files: list[pathlib.Path]) -> tuple[tuple[int, int], str]:
  """The one (width, height) and mode all files share; raises naming two files that differ."""
  first_size, first_mode = image_header(files[0])
  for path in files:
    size, mode = image_header(path)
    if mode == "RGBA":
      raise ValueError(f"image {str(path)!r} has an alpha channel (mode RGBA); convert the images to RGB, "
                       f"e.g. Image.open(f).convert('RGB').save(f)")
    if mode not in CHANNELS:
      raise ValueError(f"image {str(path)!r} has mode {mode!r}; only 8-bit grey ('L') and 'RGB' images are "
                       f"read: convert the images to one of them")
    if mode != first_mode:
      raise ValueError(f"images must share one mode: {str(files[0])!r} is {first_mode} but {str(path)!r} is "
                       f"{mode}; convert them all to 'L' or all to 'RGB'")
    if size != first_size:
      raise ValueError(f"images must share one size: {str(files[0])!r} is {first_size[0]}x{first_size[1]} "
                       f"but {str(path)!r} is {size[0]}x{size[1]} (width x height); resize or crop them "
                       f"to one size (data.image_size then rescales it to a square)")
  return first_size, first_mode


# What a damaged file found while training means for the run (its checkpoints resume only on the training
# files they were trained on, by size: gm_jax.data.pipeline's fingerprint), by split.
REMEDIES = {"train": "re-save or delete it, then train in a new --workdir (a changed training image changes "
                     "the data this run's checkpoints resume on)",
            "test": "re-save or delete it and rerun the same command"}


def read_image(path: str, mode: str, image_size: int, num_levels: int, remedy: str) -> np.ndarray:
  """One image as (H, W, C) uint8 levels in [0, num_levels), resized to image_size x image_size if set;
  `remedy` says what to do if the file cannot be decoded."""
  from PIL import Image, ImageOps

  try:
    with Image.open(path) as image:
      if image.mode != mode:
        raise ValueError(f"mode {image.mode} differs from the data set's {mode}")
      if _orientation(image) != 1:
        image = ImageOps.exif_transpose(image)
      if image_size and image.size != (image_size, image_size):
        shrink = image_size <= min(image.size)
        image = image.resize((image_size, image_size), Image.BOX if shrink else Image.BICUBIC)
      pixels = np.asarray(image, np.uint8)
  except Exception as e:  # decoding errors only show here: loading read the headers alone
    raise ValueError(f"cannot read image {path!r} ({type(e).__name__}: {e}); {remedy}") from None
  if num_levels != 256:
    pixels = ((pixels.astype(np.uint16) * num_levels) >> 8).astype(np.uint8)
  return pixels.reshape(*pixels.shape[:2], CHANNELS[mode])


class ImageFolderSource:
  """Random-access source over image files: `x` (N, H, W, C) uint8 levels, `label` (N,) int32 if labelled."""

  def __init__(self, files: list[str], labels: np.ndarray | None, shape_HWC: tuple[int, int, int], mode: str,
               image_size: int, num_levels: int, root: str = "", split: str = "train"):
    self.files = list(files)
    self.split = split
    self.root = root  # the folder the files lie in: their fingerprint names them relative to it
    self.labels = labels
    self.shape_HWC = tuple(shape_HWC)
    self.mode = mode
    self.image_size = image_size
    self.num_levels = num_levels
    # np.zeros maps pages lazily, so the cache takes memory only for the images read so far.
    fits = len(self.files) * int(np.prod(self.shape_HWC)) <= CACHE_BYTES
    self._cache = np.zeros((len(self.files), *self.shape_HWC), np.uint8) if fits else None
    self._cached = np.zeros(len(self.files), bool)

  def __len__(self) -> int:
    return len(self.files)

  def _image(self, i: int) -> np.ndarray:
    if self._cache is not None and self._cached[i]:
      return self._cache[i]
    pixels = read_image(self.files[i], self.mode, self.image_size, self.num_levels, REMEDIES[self.split])
    if pixels.shape != self.shape_HWC:
      raise ValueError(f"image {self.files[i]!r} has shape {pixels.shape}, expected {self.shape_HWC}; "
                       f"the folder changed after loading: restart the run")
    if self._cache is not None:
      self._cache[i] = pixels
      self._cached[i] = True
    return pixels

  def fingerprint(self) -> str:
    """A digest of the files' paths (relative to the folder, so that the same folder elsewhere, e.g. under
    another home directory, gives the same one) and sizes and of the labels: a file replaced by another
    of another size changes it. (Reading every image would make a large folder's start slow.)"""
    relative = (lambda f: os.path.relpath(f, self.root)) if self.root else (lambda f: f)
    listing = "\n".join(f"{relative(f)}\t{os.path.getsize(f)}" for f in self.files)
    return digest([listing] + ([self.labels] if self.labels is not None else []))

  def __getitem__(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    indices = np.asarray(indices)
    x = np.empty((len(indices), *self.shape_HWC), np.uint8)
    for row, i in enumerate(indices):
      x[row] = self._image(int(i))
    batch = {"x": x}
    if self.labels is not None:
      batch["label"] = self.labels[indices]
    return batch


def load(path: str, image_size: int = 0, num_levels: int = 0,
         test_fraction: float = split_lib.DEFAULT_TEST_FRACTION) -> Dataset:
  """The images under `path` as a Dataset of kind 'image' (see the module docstring for the layout)."""
  if not path:
    raise ValueError("data.name='image_folder' needs data.path, a folder of PNG or JPEG images")
  root = pathlib.Path(path).expanduser()
  if not root.exists():
    raise FileNotFoundError(f"image folder {str(root)!r} does not exist; set data.path to a folder of PNG or "
                            f"JPEG images")
  if not root.is_dir():
    raise ValueError(f"data.path {str(root)!r} is a file, but data.name='image_folder' expects a folder of "
                     f"images; for a .npy/.npz array file set data.name='npz'")
  if num_levels and not 2 <= num_levels <= 256:
    raise ValueError(f"data.num_levels must be 0 (keep the files' 256 levels) or in [2, 256], got "
                     f"{num_levels}")
  if image_size < 0:
    raise ValueError(f"data.image_size must be 0 (keep the files' size) or positive, got {image_size}")
  num_levels = num_levels or 256

  has_train, has_test = (root / "train").is_dir(), (root / "test").is_dir()
  if has_train != has_test:
    present, missing = ("train", "test") if has_train else ("test", "train")
    raise ValueError(f"image folder {str(root)!r} has a {present} folder but no {missing} folder; add "
                     f"{str(root / missing)!r}, or move the images out of {str(root / present)!r} for a "
                     f"seeded split")
  if has_train:
    split_lib.check_no_test_fraction(test_fraction, f"image folder {str(root)!r} has train/ and test/")
    others = [p for p in root.iterdir() if p.name not in ("train", "test") and not p.name.startswith(".")
              and (p.is_dir() and _images_in(p, recursive=True) or p.suffix.lower() in IMAGE_SUFFIXES)]
    if others:
      raise ValueError(f"image folder {str(root)!r} has train/ and test/ folders, so {others[0].name!r} "
                       f"beside them would not be read; move it into train/ or test/, or out of the folder")
    train_files, train_classes = scan_split(root / "train")
    test_files, test_classes = scan_split(root / "test")
    if (train_classes is None) != (test_classes is None):
      raise ValueError(f"in {str(root)!r} one of train/ and test/ has class subfolders and the other not; "
                       f"use the same layout in both")
    shared = _image_in_both(train_files, test_files)
    if shared is not None:
      test_path, train_path = shared
      raise ValueError(f"image {str(test_path)!r} is also the training image {str(train_path)!r} (linked); a "
                       f"test image must not be trained on: remove it from train/ or test/")
    class_names = sorted(set(train_classes)) if train_classes is not None else None
    unknown = sorted(set(test_classes or ()) - set(class_names or ()))
    if unknown:
      raise ValueError(f"test class folder {unknown[0]!r} in {str(root / 'test')!r} has no train folder; "
                       f"add {str(root / 'train' / unknown[0])!r} or remove it")
    (width, height), mode = check_headers(train_files + test_files)
  else:
    files, classes = scan_split(root)
    (width, height), mode = check_headers(files)
    class_names = sorted(set(classes)) if classes is not None else None
    train_idx, test_idx = split_lib.seeded_split(
        len(files), test_fraction, f"image folder {str(root)!r} has {len(files)} images",
        f"provide {str(root / 'train')!r} and {str(root / 'test')!r}")
    train_files, test_files = [files[i] for i in train_idx], [files[i] for i in test_idx]
    train_classes = [classes[i] for i in train_idx] if classes is not None else None
    test_classes = [classes[i] for i in test_idx] if classes is not None else None

  shape_HWC = (image_size or height, image_size or width, CHANNELS[mode])

  def source(files, classes, split):
    labels = None
    if classes is not None:
      label_of = {name: i for i, name in enumerate(class_names)}
      labels = np.asarray([label_of[c] for c in classes], np.int32)
    return ImageFolderSource([str(f) for f in files], labels, shape_HWC, mode, image_size, num_levels,
                             str(root), split)

  extras = {"class_names": class_names, "num_classes": len(class_names)} if class_names is not None else {}
  spec = DataSpec(kind="image", shape=shape_HWC, num_levels=num_levels, extras=extras)
  train, test = source(train_files, train_classes, "train"), source(test_files, test_classes, "test")
  _warn_if_levels_are_stored(train, str(root))
  return Dataset(root.name, train, test, spec)


LEVEL_PROBE = 16  # training images decoded at loading to check that they hold 8-bit values


def _warn_if_levels_are_stored(source: ImageFolderSource, root: str) -> None:
  """Warns when the first LEVEL_PROBE training images hold values only below 64: images that store small
  levels (0..16, say) are read as nearly black 8-bit images, and data.num_levels requantizes those values
  further (to levels 0..1 of 17), so the model would see almost nothing of them."""
  files = source.files[:LEVEL_PROBE]
  high = max(int(read_image(f, source.mode, source.image_size, 256, REMEDIES["train"]).max()) for f in files)
  if high >= 64:
    return
  levels = source.num_levels
  requantized = (f"; data.num_levels={levels} requantizes them to levels 0..{high * levels >> 8}"
                 if levels != 256 else "")
  logging.warning("the first %d training images in %r hold values only up to %d of 255, read as 8-bit "
                  "images (nearly black%s); if they store levels 0..%d, scale them to 0..255 or save them "
                  "in an .npz with data.num_levels=%d (docs/own_data.md)", len(files), root, high,
                  requantized, high, max(high + 1, 2))
