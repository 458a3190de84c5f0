"""Sample pictures: image grids (PIL) and 2-D scatter plots (matplotlib, Agg backend)."""

from __future__ import annotations

import math
import pathlib

import numpy as np

from gm_jax.data.dataset import Dataset


def image_grid(images_NHWC: np.ndarray, num_levels: int, columns: int | None = None,
               pad: int = 1) -> np.ndarray:
  """Tiles integer-level images into one uint8 picture (levels rescaled to 0..255)."""
  images = np.asarray(images_NHWC, np.float32) * (255.0 / max(num_levels - 1, 1))
  n, h, w, c = images.shape
  columns = columns or math.ceil(math.sqrt(n))
  rows = math.ceil(n / columns)
  grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 255.0, np.float32)
  for i, image in enumerate(images):
    r, col = divmod(i, columns)
    grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + col * (w + pad):pad + col * (w + pad) + w] = image
  # A non-finite sample (a diverged model's) shows as black, not as whatever casting NaN would give.
  return np.clip(np.round(np.nan_to_num(grid, nan=0.0)), 0, 255).astype(np.uint8)


def save_image_grid(path: pathlib.Path, images_NHWC: np.ndarray, num_levels: int, scale: int = 1,
                    columns: int | None = None) -> None:
  from PIL import Image

  grid = image_grid(images_NHWC, num_levels, columns)
  picture = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
  if scale > 1:
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
  picture.save(path)


def save_points(path: pathlib.Path, points_N2: np.ndarray, bounds: tuple[float, float] | None = None,
                reference_N2: np.ndarray | None = None, title: str = "") -> None:
  """Scatter of the first two coordinates of the samples, optionally over reference data in grey (a
  histogram for 1-D data)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
  if points_N2.shape[1] == 1:  # 1-D data: histograms of samples and reference
    if reference_N2 is not None:
      ax.hist(reference_N2[:, 0], bins=100, density=True, color="0.75")
    ax.hist(points_N2[:, 0], bins=100, density=True, histtype="step", color="tab:blue")
    ax.set_title(title, fontsize=9)
    fig.savefig(path)
    plt.close(fig)
    return
  if reference_N2 is not None:
    ax.scatter(reference_N2[:, 0], reference_N2[:, 1], s=1, c="0.75", linewidths=0)
  ax.scatter(points_N2[:, 0], points_N2[:, 1], s=1, c="tab:blue", linewidths=0)
  if bounds is not None:
    ax.set_xlim(*bounds)
    ax.set_ylim(*bounds)
  ax.set_aspect("equal")
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def _grid_scale(dataset: Dataset) -> int:
  return 4 if dataset.spec.shape[0] <= 16 else 1  # small images (digits) are enlarged


def save_samples(path: pathlib.Path, samples: np.ndarray, dataset: Dataset, title: str,
                 extra: dict[str, np.ndarray] | None = None) -> pathlib.Path:
  """Writes samples as the data's modality shows them: a scatter over test points, an image grid (and
  the `extra` image grids beside it as <name>_<file>), or decoded text (.txt). Returns the path written."""
  spec = dataset.spec
  if spec.kind == "points":
    dist = spec.extras.get("distribution")
    save_points(path, samples, bounds=getattr(dist, "bounds", None),
                reference_N2=dataset.test[np.arange(min(len(dataset.test), 5000))]["x"], title=title)
  elif spec.kind == "image":
    save_image_grid(path, samples, spec.num_levels, scale=_grid_scale(dataset))
    for name, images in (extra or {}).items():
      save_image_grid(path.with_name(f"{name}_{path.name}"), np.asarray(images), spec.num_levels,
                      scale=_grid_scale(dataset), columns=8)
  else:
    path = path.with_suffix(".txt")
    to_bytes = spec.extras["tokenizer"].to_bytes
    # The corpus's own bytes (UTF-8 at char level, any encoding at byte level), no newline translation.
    path.write_bytes(b"\n\n-----\n\n".join(to_bytes(row) for row in samples))
  return path


def save_judged_samples(path: pathlib.Path, samples: np.ndarray, dataset: Dataset) -> None:
  """The first 64 of the samples judged by the sample-quality metrics, as an image grid (images only)."""
  if dataset.spec.kind == "image":
    save_image_grid(path, samples[:64], dataset.spec.num_levels, scale=_grid_scale(dataset))
