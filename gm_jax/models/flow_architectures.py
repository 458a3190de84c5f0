"""Flow architectures beyond affine coupling, built from the same FlowConfig as NICE/RealNVP/Glow:

  nsf   Neural spline flow, coupling form (RQ-NSF (C), Durkan et al. 2019): vectors: steps of an
        invertible linear map (LU) and a rational-quadratic spline coupling with alternating masks;
        images: Glow's multi-scale levels (squeeze, steps of ActNorm -> 1x1 conv (LU) -> spline coupling
        on half the channels, factor out half) with spline couplings in place of affine ones.
  maf   Masked autoregressive flow (Papamakarios et al. 2017): steps of ActNorm and a MADE layer whose
        order reverses from step to step; `transform` affine (MAF) or spline (RQ-NSF (AR)). Density in
        one MADE pass per step, sampling in D.
  iaf   Inverse autoregressive flow (Kingma et al. 2016): the same steps, sampling in one pass per step
        and density in D.
Images go through the flow's preprocessing first (logit or shift), as for the other architectures.
"""

from __future__ import annotations

import flax.linen as nn

from gm_jax.models import bijectors as bj
from gm_jax.models import made, splines

ARCHITECTURES = ("nsf", "maf", "iaf")


def glow_steps(cfg, level: int, make_coupling) -> list[nn.Module]:
  """A level's steps of ActNorm -> 1x1 convolution (seeded by level and step) -> make_coupling():
  unrolled, or as one scan (cfg.scan_steps)."""
  seeds = tuple(100 * level + i for i in range(cfg.steps_per_level))
  if cfg.scan_steps:
    return [bj.GlowSteps(make_coupling, seeds)]
  return [layer for seed in seeds
          for layer in (bj.ActNorm(), bj.InvertibleLinear(seed=seed), make_coupling())]


def _spline_coupling(cfg, shape, mask, kind: str) -> splines.SplineCoupling:
  conditioner = bj.make_conditioner(kind, cfg.hidden, splines.num_spline_params(cfg.num_bins), cfg.dtype,
                                    cfg.scan_blocks, cfg.conditioner_bias_init)
  return splines.SplineCoupling(mask, conditioner, num_bins=cfg.num_bins, bound=cfg.tail_bound)


def _nsf_level(cfg, shape, level: int) -> nn.Module:
  h, w, c = shape
  squeezed = (h // 2, w // 2, 4 * c)
  coupling = lambda: _spline_coupling(cfg, squeezed, bj.channel_mask(squeezed, 0), cfg.conditioner)
  layers = [bj.Squeeze()] + glow_steps(cfg, level, coupling)
  if level < cfg.num_levels - 1:
    layers += [bj.FactorOut(_nsf_level(cfg, (h // 2, w // 2, 2 * c), level + 1))]
  layers += [bj.Squeeze(undo=True)]
  return bj.Chain(layers)


def check_squeezable(cfg, squeezes: int) -> None:
  """Refuses images whose height or width the flow's `squeezes` (each halving both) cannot divide."""
  h, w, _ = cfg.x_shape
  factor = 2 ** squeezes
  if h % factor or w % factor:
    raise ValueError(f"image size {tuple(cfg.x_shape)} cannot be squeezed over {cfg.num_levels} levels: "
                     f"height and width must be multiples of {factor}; resize the images "
                     f"(data.image_size) or set fewer model.num_levels")


def build_layers(cfg) -> list[nn.Module]:
  """The flow's layers after preprocessing, for architecture nsf, maf or iaf."""
  n = cfg.steps_per_level * cfg.num_levels
  if cfg.architecture == "nsf":
    if cfg.is_image:
      check_squeezable(cfg, cfg.num_levels)
      return [_nsf_level(cfg, cfg.x_shape, 0)]
    layers = []
    for i in range(n):
      layers += [bj.InvertibleLinear(seed=i),
                 _spline_coupling(cfg, cfg.x_shape, bj.checkerboard_mask(cfg.x_shape, i % 2), "mlp")]
    return layers
  if cfg.architecture in ("maf", "iaf"):
    layers = []
    for i in range(n):
      layers += [bj.ActNorm(),
                 made.MaskedAutoregressive(cfg.hidden, kind=cfg.architecture, transform=cfg.transform,
                                           reverse=i % 2 == 1, num_bins=cfg.num_bins, bound=cfg.tail_bound,
                                           scale_init=cfg.coupling_scale_init, dtype=cfg.dtype)]
    return layers
  raise ValueError(f"unknown flow architecture {cfg.architecture!r}; use one of {ARCHITECTURES}")
