"""The FID Inception network: PyTorch's bilinear resize, features with random weights, the converter from
pytorch-fid's state dict, the npz format and the conversion command.

Every forward pass goes through InceptionFeatures (one shared jitted program per input shape), and random
variables are drawn for the module's own variable shapes (jax.eval_shape of init): a real init traces and
compiles the full 299x299 network with ~190 random initializers, about 30 s on 2 CPU cores.
"""

from __future__ import annotations

import sys
import types

import jax
import numpy as np
import pytest
from flax import traverse_util

from gm_jax.evaluation import inception_weights as iw
from gm_jax.models.inception import InceptionV3FID, resize_bilinear

# Parameters of pytorch-fid's FID network (torchvision's Inception3 without AuxLogits, 1008 classes,
# FID-patched blocks, which change no shapes), counted from torchvision's layer definitions: each
# BasicConv2d has in*out*kh*kw conv weights + 2*out BN weight/bias; stem 172,672; Mixed_5b/5c/5d
# 255,904/277,472/285,152; 6a 1,153,280; 6b 1,297,408; 6c/6d 1,691,008 each; 6e 2,141,952; 7a 1,698,304;
# 7b 5,044,608; 7c 6,076,800 -> 21,785,568, plus fc 2048*1008 + 1008 = 23,850,960. Cross-checks: with
# 1000 classes this is 23,834,568, torchvision's inception_v3 (27,161,264) minus its 3,326,696-parameter
# aux head; and PyTorch counts 23,850,960 parameters in pytorch-fid's fid_inception_v3().
FID_INCEPTION_PARAMS = 23_850_960

# A few entries of the published pt_inception-2015-12-05-6726825d.pth, written out by hand.
PUBLISHED_SHAPES = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_1a_3x3.bn.running_var": (32,),
    "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
    "Mixed_5b.branch5x5_2.conv.weight": (64, 48, 5, 5),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
    "Mixed_6e.branch7x7dbl_2.conv.weight": (192, 192, 7, 1),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7b.branch3x3_2b.conv.weight": (384, 384, 3, 1),
    "Mixed_7b.branch3x3dbl_1.bn.weight": (448,),
    "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}


def _count(tree) -> int:
  return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))


def _random_leaf(rng: np.random.Generator, name: str, shape: tuple[int, ...]) -> np.ndarray:
  """A sane random value for a pytorch-fid entry: He-scaled weights so activations keep their size
  through 94 ReLU layers, and batch-norm statistics away from the identity (positive variances)."""
  if name.endswith("conv.weight") or name == "fc.weight":
    return rng.normal(0, np.sqrt(2 / np.prod(shape[1:])), shape).astype(np.float32)
  low, high = {"weight": (0.5, 1.5), "running_var": (0.5, 2.0)}.get(name.rsplit(".", 1)[1], (-0.2, 0.2))
  return rng.uniform(low, high, shape).astype(np.float32)


@pytest.fixture(scope="module")
def state_dict() -> dict[str, np.ndarray]:
  rng = np.random.default_rng(0)
  return {name: _random_leaf(rng, name, shape) for name, shape in iw.torch_state_dict_shapes().items()}


@pytest.fixture(scope="module")
def variables(state_dict):
  return iw.convert_state_dict(state_dict)


@pytest.fixture(scope="module")
def features(variables) -> iw.InceptionFeatures:
  return iw.InceptionFeatures(variables, batch_size=2, with_logits=True)


@pytest.fixture(scope="module")
def images_NHWC() -> np.ndarray:
  return np.random.default_rng(1).uniform(0, 1, (2, 16, 16, 3)).astype(np.float32)


def _torch_bilinear(x_NHWC: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
  """PyTorch's bilinear resize (align_corners=False, no antialias) pixel by pixel in float64: source
  coordinate (o + 0.5) * in / out - 0.5, clamped at 0 below, 4 neighbours clamped to the image."""
  n, h, w, c = x_NHWC.shape
  out = np.zeros((n, out_h, out_w, c))
  for oy in range(out_h):
    sy = max((oy + 0.5) * h / out_h - 0.5, 0.0)
    y0 = int(sy)
    y1, fy = min(y0 + 1, h - 1), sy - y0
    for ox in range(out_w):
      sx = max((ox + 0.5) * w / out_w - 0.5, 0.0)
      x0 = int(sx)
      x1, fx = min(x0 + 1, w - 1), sx - x0
      out[:, oy, ox] = ((1 - fy) * ((1 - fx) * x_NHWC[:, y0, x0] + fx * x_NHWC[:, y0, x1])
                        + fy * ((1 - fx) * x_NHWC[:, y1, x0] + fx * x_NHWC[:, y1, x1]))
  return out


@pytest.mark.parametrize("in_hw, out_hw", [((8, 8), (299, 299)), ((32, 32), (299, 299)),
                                           ((13, 21), (299, 299)), ((37, 64), (20, 45))])
def test_resize_is_pytorchs_bilinear(in_hw, out_hw):
  x = np.random.default_rng(2).uniform(0, 1, (2, *in_hw, 3)).astype(np.float32)
  got = np.asarray(jax.jit(resize_bilinear, static_argnums=(1, 2))(x, *out_hw))
  # Source coordinates are float32 (as in PyTorch), a few 1e-6 off the float64 reference's at ~60.
  np.testing.assert_allclose(got, _torch_bilinear(x.astype(np.float64), *out_hw), atol=1e-5, rtol=0)
  np.testing.assert_array_equal(resize_bilinear(x, *in_hw), x)  # PyTorch's rule is the identity


def test_features_of_random_network(features, variables, images_NHWC):
  feats, logits = features(images_NHWC)
  again, _ = features(images_NHWC)
  assert feats.shape == (2, 2048) and feats.dtype == np.float32 and logits.shape == (2, 1008)
  np.testing.assert_array_equal(feats, again)
  assert np.all(np.isfinite(feats)) and np.all(feats >= 0)  # averages of ReLU outputs
  assert np.mean(feats > 0) > 0.5
  # The input matters (two noise images differ by ~5% through a random network; float noise is ~1e-7).
  assert np.abs(feats[0] - feats[1]).mean() > 1e-3 * feats.mean()
  fc = variables["params"]["fc"]
  np.testing.assert_allclose(logits, feats @ fc["kernel"] + fc["bias"], rtol=1e-4, atol=1e-4)


# Outputs of pytorch-fid 0.3.0's network (its InceptionV3 wrapper, resize included, and
# fid_inception_v3's fc) loaded with the `state_dict` fixture's values and run by PyTorch 2 on the
# `images_NHWC` fixture as NCHW: per-image feature sums, features[:, ::256], logit sums, logits[:, ::126].
# Both fixtures come from NumPy's seeded Generator, whose streams are stable across versions.
PYTORCH_FEATURE_SUMS = [978.1449, 953.7729]
PYTORCH_FEATURES = [[0.5815033, 0.1175990, 7.958143e-04, 1.423749, 1.281081e-03, 0.2043863, 0.03354895,
                     0.04259868],
                    [0.5765935, 0.08015558, 2.340506e-03, 1.350760, 9.669124e-04, 0.2087858, 0.03111569,
                     0.04513349]]
PYTORCH_LOGIT_SUMS = [16.83617, 16.52514]
PYTORCH_LOGITS = [[1.155869, 2.578818, 0.1921089, 0.4163902, -0.7857435, -0.8525316, -1.673421, -0.6345499],
                  [1.141120, 2.455803, 0.1808193, 0.4162123, -0.7277811, -0.8338137, -1.582955, -0.6532116]]


def test_features_match_pytorch_fid(features, images_NHWC):
  feats, logits = features(images_NHWC)
  np.testing.assert_allclose(feats.sum(1), PYTORCH_FEATURE_SUMS, rtol=1e-5)
  np.testing.assert_allclose(feats[:, ::256], PYTORCH_FEATURES, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(logits.sum(1), PYTORCH_LOGIT_SUMS, rtol=1e-4)
  np.testing.assert_allclose(logits[:, ::126], PYTORCH_LOGITS, rtol=1e-4, atol=1e-5)


def test_grey_images_equal_replicated_rgb(features, images_NHWC):
  grey = images_NHWC[..., :1]
  # Two programs (one replicates the channel inside): XLA's convolutions may block them differently, so
  # they agree to float32 rounding accumulated over the network (up to 1e-5 relative measured).
  np.testing.assert_allclose(features(grey)[0], features(np.repeat(grey, 3, axis=-1))[0],
                             rtol=2e-5, atol=1e-6)


def test_features_stream_through_batches(features, images_NHWC):
  """Three images in batches of 2 (the last one padded) give each image's own features."""
  three = np.concatenate([images_NHWC, images_NHWC[::-1]])[:3]
  streamed, _ = features.from_batches([three[:1], three[1:]])
  each = np.concatenate([features(three[i:i + 1])[0] for i in range(3)])
  assert streamed.shape == (3, 2048)
  np.testing.assert_allclose(streamed, each, rtol=1e-6, atol=1e-6)
  with pytest.raises(TypeError, match="divide uint8 by 255"):
    features((images_NHWC * 255).astype(np.uint8))
  # The caller's shape, not the padded batch's.
  with pytest.raises(ValueError, match=r"got shape \(1, 16, 16, 4\)"):
    features(np.zeros((1, 16, 16, 4), np.float32))


def test_state_dict_layout_is_pytorch_fids():
  shapes = iw.torch_state_dict_shapes()
  for name, shape in PUBLISHED_SHAPES.items():
    assert shapes[name] == shape, name
  # 94 BasicConv2d (conv weight + 4 batch-norm entries each) and the classifier; no aux head.
  assert len(shapes) == 94 * 5 + 2
  assert not any(name.startswith("AuxLogits") for name in shapes)
  params = {n: s for n, s in shapes.items() if not n.endswith(("running_mean", "running_var"))}
  assert sum(int(np.prod(s)) for s in params.values()) == FID_INCEPTION_PARAMS
  flax_shapes = jax.eval_shape(InceptionV3FID().init, jax.random.key(0), np.zeros((1, 8, 8, 3), np.float32))
  assert _count(flax_shapes["params"]) == FID_INCEPTION_PARAMS


def _flax_leaf(variables, name: str) -> np.ndarray:
  """The converted value of a pytorch-fid entry, by the rule written out independently here."""
  *modules, leaf = name.split(".")
  if modules[-1] == "bn":
    collection, flax_leaf = {"weight": ("params", "scale"), "bias": ("params", "bias"),
                             "running_mean": ("batch_stats", "mean"),
                             "running_var": ("batch_stats", "var")}[leaf]
  else:
    collection, flax_leaf = "params", {"weight": "kernel", "bias": "bias"}[leaf]
  node = variables[collection]
  for m in modules + [flax_leaf]:
    node = node[m]
  return np.asarray(node)


def test_converted_leaves_are_transposed_sources(state_dict, variables):
  assert _count(variables) == sum(a.size for a in state_dict.values())
  for name, value in state_dict.items():
    if name.endswith("conv.weight"):
      expected = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    elif name == "fc.weight":
      expected = value.T
    else:
      expected = value
    np.testing.assert_array_equal(_flax_leaf(variables, name), expected, err_msg=name)


def test_converter_is_strict(state_dict):
  def fails(bad, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")) as info:
      iw.convert_state_dict(bad)
    assert "\n" not in str(info.value)

  fails({k: v for k, v in state_dict.items() if k != "Mixed_6c.branch7x7_3.bn.running_var"},
        "Mixed_6c.branch7x7_3.bn.running_var")
  fails({**state_dict, "AuxLogits.fc.weight": np.zeros((1008, 768), np.float32)}, "AuxLogits.fc.weight")
  fails({**state_dict, "fc.weight": np.zeros((1000, 2048), np.float32)}, "fc.weight")
  # PyTorch's batch-norm step counters are accepted and dropped.
  counters = {"Mixed_5b.branch1x1.bn.num_batches_tracked": np.array(0)}
  assert iw.convert_state_dict({**state_dict, **counters}).keys() == {"params", "batch_stats"}


def test_conversion_command_and_npz_round_trip(tmp_path, monkeypatch, state_dict, variables):
  pth, out = tmp_path / iw.PTH_NAME, tmp_path / "inception_v3_fid.npz"
  pth.write_bytes(b"")
  fake_torch = types.ModuleType("torch")
  fake_torch.load = lambda path, map_location, weights_only: dict(state_dict)  # stands in for the .pth
  monkeypatch.setitem(sys.modules, "torch", fake_torch)
  iw.main([f"--pth={pth}", f"--out={out}"])
  loaded = iw.load_inception_variables(out)
  jax.tree.map(np.testing.assert_array_equal, loaded, variables)


def test_conversion_without_torch_says_how_to_install(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
  with pytest.raises(SystemExit, match="pip install torch"):
    iw.main([f"--pth={tmp_path / iw.PTH_NAME}", f"--out={tmp_path / 'out.npz'}"])


def test_missing_weight_file_names_it_and_the_command(tmp_path):
  path = tmp_path / "inception_v3_fid.npz"
  with pytest.raises(FileNotFoundError) as info:
    iw.load_inception_variables(path)
  message = str(info.value)
  assert str(path) in message and "python -m gm_jax.evaluation.inception_weights --pth=" in message
  assert "\n" not in message


def _npz(path, arrays):
  with open(path, "wb") as f:
    np.savez(f, **arrays)
  return path


@pytest.mark.parametrize("damage,message", [
    ("empty", "is not a converted FID Inception weight file"),
    ("truncated", "is not a converted FID Inception weight file|cannot be read"),
    ("one_array", "holds one array, not the npz of the network's variables"),
    ("pytorch", "is a PyTorch weight file, not a converted one"),
    ("strings", "holds <U1, not floats"),
    ("nan", "holds NaN or infinite values"),
    ("directory", "is a directory; pass the converted .npz file"),
    ("text", r"is not a converted FID Inception weight file \(neither an npz nor an npy file\)"),
    ("unknown", "unexpected array 'params/extra', not a variable of InceptionV3FID"),
    ("misshapen", r"has shape \(1,\), expected"),
    ("missing", r"\(1 arrays missing\)")])
def test_a_damaged_weight_file_is_one_line_naming_it(tmp_path, variables, damage, message):
  path = tmp_path / "inception_v3_fid.npz"
  flat = {"/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(dict(variables)).items()}
  first = next(iter(flat))
  if damage == "empty":
    path.write_bytes(b"")
  elif damage == "truncated":
    whole = _npz(tmp_path / "whole.npz", flat).read_bytes()
    path.write_bytes(whole[:len(whole) // 2])
  elif damage == "one_array":
    np.save(open(path, "wb"), flat[first])
  elif damage == "pytorch":  # a .pth is a zip archive holding data.pkl
    _npz(path, {"archive/data.pkl": np.zeros(1, np.float32)})
  elif damage == "strings":
    _npz(path, {**flat, first: np.full(flat[first].shape, "x")})
  elif damage == "nan":
    _npz(path, {**flat, first: np.full(flat[first].shape, np.nan, np.float32)})
  elif damage == "text":
    path.write_text("not weights\n")
  elif damage == "unknown":
    _npz(path, {**flat, "params/extra": np.zeros(1, np.float32)})
  elif damage == "misshapen":
    _npz(path, {**flat, first: np.zeros(1, np.float32)})
  elif damage == "missing":
    _npz(path, {k: v for k, v in flat.items() if k != first})
  else:
    path.mkdir()
  with pytest.raises(ValueError, match=message) as info:
    iw.load_inception_variables(path)
  # One line naming the file and the converter's command.
  assert str(path) in str(info.value) and "\n" not in str(info.value) and "--pth=" in str(info.value)


def test_the_converter_never_replaces_a_file_and_refuses_what_is_not_a_weight_file(tmp_path, monkeypatch):
  pth, kept = tmp_path / iw.PTH_NAME, tmp_path / "notes.txt"
  pth.write_bytes(b"the only copy")
  kept.write_text("precious")
  for out in (kept, pth):
    with pytest.raises(SystemExit, match=f"--out={out} exists; the converter never replaces a file"):
      iw.main([f"--pth={pth}", f"--out={out}"])
  with pytest.raises(SystemExit, match="does not exist; create it first"):
    iw.main([f"--pth={pth}", f"--out={tmp_path / 'missing' / 'out.npz'}"])
  assert pth.read_bytes() == b"the only copy" and kept.read_text() == "precious"
  fake_torch = types.ModuleType("torch")
  monkeypatch.setitem(sys.modules, "torch", fake_torch)
  cases = ((EOFError("Ran out of input"), r"is not a PyTorch weight file \(Ran out of input\)"),
           ([1, 2, 3], "holds a list, not a state dict"))
  for loaded, message in cases:
    def load(path, map_location, weights_only, loaded=loaded):
      if isinstance(loaded, Exception):
        raise loaded
      return loaded
    fake_torch.load = load
    with pytest.raises(SystemExit, match=message):
      iw.main([f"--pth={pth}", f"--out={tmp_path / 'out.npz'}"])
  assert not (tmp_path / "out.npz").exists()
