"""Weights of the FID Inception network: conversion from pytorch-fid's file, loading, batched features.

The weights are the TensorFlow `inception-2015-12-05` graph's, as published by pytorch-fid:

  https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth

Convert the downloaded file once (this step alone needs PyTorch, `pip install torch`; nothing else here
does):

  python -m gm_jax.evaluation.inception_weights --pth=pt_inception-2015-12-05-6726825d.pth \
      --out=inception_v3_fid.npz

and pass the written file's path in the config as `eval.inception_weights`.

File format: an uncompressed `.npz` with one float32 array per variable of `InceptionV3FID`, keyed by its
flattened path 'collection/module/.../leaf', e.g. 'params/Mixed_5b/branch1x1/conv/kernel' or
'batch_stats/Conv2d_1a_3x3/bn/mean'. Kernels are stored in Flax's layout (HWIO convolutions, (in, out)
classifier).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from gm_jax.models.inception import InceptionV3FID
from gm_jax.train import cpu_compile

PTH_NAME = "pt_inception-2015-12-05-6726825d.pth"
PTH_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{PTH_NAME}"
CONVERT_COMMAND = "python -m gm_jax.evaluation.inception_weights"

# (Flax collection, leaf) of each batch-norm entry of a PyTorch BasicConv2d's `bn`.
_BN_LEAVES = {"weight": ("params", "scale"), "bias": ("params", "bias"),
              "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}
_BN_FROM_FLAX = {v: k for k, v in _BN_LEAVES.items()}
_OIHW_TO_HWIO = (2, 3, 1, 0)

FlatKey = tuple[str, ...]


@functools.lru_cache(maxsize=1)
def flax_variable_shapes() -> dict[FlatKey, tuple[int, ...]]:
  """Shape of every variable of InceptionV3FID, keyed by (collection, *module path, leaf)."""
  variables = jax.eval_shape(InceptionV3FID().init, jax.random.key(0),
                             jax.ShapeDtypeStruct((1, 8, 8, 3), jnp.float32))
  return {key: tuple(leaf.shape) for key, leaf in traverse_util.flatten_dict(dict(variables)).items()}


def torch_key(flax_key: FlatKey) -> str:
  """pytorch-fid's state-dict name of a Flax variable (the inverse of the converter's mapping)."""
  collection, *modules, leaf = flax_key
  if modules[-1] == "bn" and (collection, leaf) in _BN_FROM_FLAX:
    return ".".join(modules + [_BN_FROM_FLAX[(collection, leaf)]])
  if collection == "params" and leaf == "kernel" and modules[-1] in ("conv", "fc"):
    return ".".join(modules + ["weight"])
  if collection == "params" and leaf == "bias" and modules == ["fc"]:
    return "fc.bias"
  raise ValueError(f"no PyTorch name for the Flax variable {'/'.join(flax_key)}")


def _torch_perm(flax_key: FlatKey) -> tuple[int, ...] | None:
  """Axis permutation taking a PyTorch array to the Flax layout of flax_key (None: same layout)."""
  if flax_key[-1] != "kernel":
    return None
  return _OIHW_TO_HWIO if flax_key[-2] == "conv" else (1, 0)


@functools.lru_cache(maxsize=1)
def _torch_spec() -> dict[str, tuple[FlatKey, tuple[int, ...], tuple[int, ...] | None]]:
  """PyTorch name -> (Flax key, PyTorch shape, permutation to the Flax layout)."""
  spec = {}
  for flax_key, shape in flax_variable_shapes().items():
    perm = _torch_perm(flax_key)
    torch_shape = shape if perm is None else tuple(shape[i] for i in np.argsort(perm))
    spec[torch_key(flax_key)] = (flax_key, torch_shape, perm)
  return spec


def torch_state_dict_shapes() -> dict[str, tuple[int, ...]]:
  """Name -> shape of every entry of pytorch-fid's FID Inception state dict that the converter reads
  (the batch norms' `num_batches_tracked` counters, if present, are ignored)."""
  return {name: shape for name, (_, shape, _) in _torch_spec().items()}


def convert_state_dict(state_dict: Mapping[str, Any]) -> dict:
  """Flax variables {'params', 'batch_stats'} of InceptionV3FID from pytorch-fid's state dict.

  Convolutions go from OIHW to HWIO and the classifier from (out, in) to (in, out); batch norm
  weight/bias/running_mean/running_var become scale/bias/mean/var. Strict: an unknown, missing or
  misshapen entry raises a ValueError naming it.
  """
  spec = _torch_spec()
  flat = {}
  for name, value in state_dict.items():
    if name.endswith(".bn.num_batches_tracked") and name.rsplit(".", 1)[0] + ".weight" in spec:
      continue  # a training counter; inference does not use it
    if name not in spec:
      raise ValueError(f"unexpected key {name!r}: not in pytorch-fid's FID Inception state dict")
    flax_key, shape, perm = spec[name]
    array = np.asarray(value)
    if array.shape != shape:
      raise ValueError(f"{name!r} has shape {array.shape}, expected {shape}")
    flat[flax_key] = np.ascontiguousarray(array.transpose(perm) if perm else array, dtype=np.float32)
  missing = [name for name in spec if name not in state_dict]
  if missing:
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    raise ValueError(f"state dict lacks {missing[0]!r}{more} of pytorch-fid's FID Inception network")
  return traverse_util.unflatten_dict(flat)


def save_inception_variables(variables: Mapping[str, Any], path: str | os.PathLike) -> None:
  """Writes variables to path as the module's npz format (flattened 'collection/.../leaf' keys)."""
  flat = {"/".join(key): np.asarray(value, np.float32)
          for key, value in traverse_util.flatten_dict(dict(variables)).items()}
  path = os.fspath(path)
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:  # a file object keeps np.savez from appending '.npz' to the name
    np.savez(f, **flat)
  os.replace(tmp, path)  # no half-written weight file if interrupted


def load_inception_variables(path: str | os.PathLike) -> dict:
  """InceptionV3FID variables {'params', 'batch_stats'} (NumPy float32) from a converted npz file,
  checked against the module's variables: a file that is not such an npz, or a missing, unknown,
  misshapen, non-float or non-finite array, raises ValueError naming the file and what to do."""
  path = os.fspath(path)
  convert = f"convert pytorch-fid's {PTH_NAME} with: {CONVERT_COMMAND} --pth={PTH_NAME} --out=FILE.npz"
  if os.path.isdir(path):
    raise ValueError(f"FID Inception weights {path} is a directory; pass the converted .npz file ({convert})")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"FID Inception weights {path} not found; convert pytorch-fid's {PTH_NAME} "
                            f"with: {CONVERT_COMMAND} --pth={PTH_NAME} --out={path}")
  expected = flax_variable_shapes()
  flat = {}
  try:
    data = np.load(path)  # allow_pickle=False: a weight file holds arrays only
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    # NumPy reads any file that is neither npz nor npy as a pickle, and its refusal suggests allow_pickle.
    reason = "neither an npz nor an npy file" if "allow_pickle" in str(e) else _first_line(e)
    raise ValueError(f"{path} is not a converted FID Inception weight file ({reason}); {convert}") from None
  if not isinstance(data, np.lib.npyio.NpzFile):
    raise ValueError(f"{path} holds one array, not the npz of the network's variables; {convert}")
  with data:
    if any(name.endswith("data.pkl") for name in data.files):
      raise ValueError(f"{path} is a PyTorch weight file, not a converted one; {convert}")
    for name in data.files:
      key = tuple(name.split("/"))
      if key not in expected:
        raise ValueError(f"{path}: unexpected array {name!r}, not a variable of InceptionV3FID; {convert}")
      try:
        array = data[name]
      except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: array {name!r} cannot be read ({_first_line(e)}); {convert}") from None
      if array.shape != expected[key]:
        raise ValueError(f"{path}: {name!r} has shape {array.shape}, expected {expected[key]}; {convert}")
      if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{path}: {name!r} holds {array.dtype}, not floats; {convert}")
      if not np.all(np.isfinite(array)):
        raise ValueError(f"{path}: {name!r} holds NaN or infinite values; {convert}")
      flat[key] = array.astype(np.float32, copy=False)
  missing = [key for key in expected if key not in flat]
  if missing:
    raise ValueError(f"{path}: lacks {'/'.join(missing[0])} ({len(missing)} arrays missing); {convert}")
  return traverse_util.unflatten_dict(flat)


def _first_line(error: BaseException) -> str:
  message = str(error).strip()
  return message.splitlines()[0][:200] if message else type(error).__name__


@functools.lru_cache(maxsize=None)
def _jitted_apply(with_logits: bool):
  """One jitted forward pass per output kind, shared by all InceptionFeatures (compiled once per
  input shape, not once per instance)."""
  model = InceptionV3FID()
  return cpu_compile.jit(lambda variables, images: model.apply(variables, images, with_logits=with_logits))


class InceptionFeatures:
  """images NHWC in [0, 1] -> FID Inception pool3 features (N, 2048) as NumPy float32, computed in
  fixed-size batches so that any number of images streams through one compiled program.

  With with_logits=True, calls return (features, logits (N, 1008)) for an Inception Score. Each image
  size compiles once; the last, short batch of an input is padded to batch_size.
  """

  def __init__(self, variables: Mapping[str, Any], batch_size: int = 200, with_logits: bool = False):
    if batch_size < 1:
      raise ValueError(f"batch_size must be positive, got {batch_size}")
    self.variables = jax.device_put(dict(variables))  # moved to the device once, not per batch
    self.batch_size = batch_size
    self.with_logits = with_logits
    self._apply = _jitted_apply(with_logits)

  @classmethod
  def from_file(cls, path: str | os.PathLike, **kwargs) -> InceptionFeatures:
    """An InceptionFeatures with the variables of a converted weight file."""
    return cls(load_inception_variables(path), **kwargs)

  def __call__(self, images_NHWC: Any):
    """Features (N, 2048) of one array of images (and logits (N, 1008) if with_logits)."""
    return self.from_batches([images_NHWC])

  def from_batches(self, batches: Iterable[Any]):
    """Features of the concatenation of the image arrays in batches (any sizes, e.g. a sampler's
    outputs), without holding all images at once."""
    outputs, pending = [], None
    for images in batches:
      if np.ndim(images) != 4 or np.shape(images)[-1] not in (1, 3):  # before padding changes the shape
        raise ValueError(f"expected images (N, H, W, 1 or 3), got shape {np.shape(images)}")
      for start in range(0, images.shape[0], self.batch_size):
        chunk = images[start:start + self.batch_size]  # sliced before any transfer to the device
        n = chunk.shape[0]
        if n < self.batch_size:
          chunk = jnp.pad(jnp.asarray(chunk), [(0, self.batch_size - n)] + [(0, 0)] * (chunk.ndim - 1))
        result = (self._apply(self.variables, chunk), n)
        if pending is not None:  # fetch the previous batch while this one runs
          outputs.append(_to_host(*pending))
        pending = result
    if pending is not None:
      outputs.append(_to_host(*pending))
    if not outputs:
      raise ValueError("no images given")
    if self.with_logits:
      return (np.concatenate([f for f, _ in outputs]), np.concatenate([g for _, g in outputs]))
    return np.concatenate(outputs)


def _to_host(result, n: int):
  """The first n rows of a batch's output(s), as NumPy."""
  return jax.tree.map(lambda a: np.asarray(a[:n]), result)


def read_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """The state dict of a PyTorch weight file as NumPy arrays (needs torch, imported only here)."""
  try:
    import torch
  except ImportError:
    raise ImportError("reading a PyTorch .pth file needs PyTorch: pip install torch") from None
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{os.fspath(path)} not found; download it from {PTH_URL}")
  try:
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # torch raises many types for a file that is not one of its weight files
    raise ValueError(f"{os.fspath(path)} is not a PyTorch weight file ({_first_line(e)}); download "
                     f"{PTH_NAME} from {PTH_URL}") from None
  if not isinstance(state_dict, Mapping):
    raise ValueError(f"{os.fspath(path)} holds a {type(state_dict).__name__}, not a state dict; download "
                     f"{PTH_NAME} from {PTH_URL}")
  return {name: _to_numpy(value) for name, value in state_dict.items()}


def _to_numpy(value: Any) -> np.ndarray:
  return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def main(argv: Sequence[str] | None = None) -> None:
  """Command line: converts pytorch-fid's .pth weight file to this package's npz format."""
  parser = argparse.ArgumentParser(
      prog=CONVERT_COMMAND,
      description=f"Convert pytorch-fid's FID Inception weights ({PTH_URL}) to an npz for InceptionV3FID.")
  parser.add_argument("--pth", required=True, help=f"the downloaded {PTH_NAME}")
  parser.add_argument("--out", required=True, help="the npz to write (set eval.inception_weights to it)")
  args = parser.parse_args(argv)
  out = os.path.abspath(args.out)
  if os.path.lexists(out):
    sys.exit(f"error: --out={args.out} exists; the converter never replaces a file: choose a new --out")
  if not os.path.isdir(os.path.dirname(out)):
    sys.exit(f"error: --out={args.out}: its folder {os.path.dirname(out)} does not exist; create it first")
  try:
    variables = convert_state_dict(read_torch_state_dict(args.pth))
  except (ImportError, FileNotFoundError, ValueError) as e:
    sys.exit(f"error: {e}")
  save_inception_variables(variables, args.out)
  count = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(variables["params"]))
  print(f"wrote {args.out}: {count:,} parameters and batch-norm statistics")


if __name__ == "__main__":
  main()
