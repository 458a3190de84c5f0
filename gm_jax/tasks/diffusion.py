"""Diffusion family (DDPM, VDM, score SDEs, EDM, flow matching) through the one trainer.

Data: points (toy2d) are used as they are; integer-level images are scaled to y = 2 k / (K - 1) - 1 in
[-1, 1]. The network (TimeMLP or UNet) predicts config.model.prediction (eps | x0 | v | score |
velocity) and is read through gm_jax.diffusion.parameterization everywhere, so every loss, sampler and
likelihood below works with any of them (the interpolant paths need velocity or v: converting the others to
a velocity divides by 0 at their ends).
With config.model.num_classes > 0 the network is class-conditional on the data's `label`: trained with
the label replaced by "none" at rate objective.label_dropout, evaluated as log p(x | label), sampled in
equal runs of each class with classifier-free guidance of scale eval.guidance (0: the conditional model).

config.process: name (ddpm_linear | ddpm_cosine | vp | subvp | ve | vdm | karras | linear_interpolant |
  cosine_interpolant), num_steps (DDPM's T),
  beta_min/beta_max (VP, sub-VP), sigma_min/sigma_max (VE, karras) and rho (karras), gamma_min/gamma_max
  and learned (fixed | endpoints | network) for VDM.
config.model: preconditioning = 'edm' wraps the network in EDM's c_skip, c_out, c_in, c_noise (with
  sigma_data; the network then predicts x0).
config.objective: loss = 'denoising' (with weighting eps | x0 | v | likelihood), 'vdm_elbo' (VDM's
  continuous-time ELBO: prior + diffusion + reconstruction, each logged), 'flow_matching' (the
  conditional flow-matching loss on the process's path; coupling 'ot' draws each example's noise from the
  minibatch OT plan, gm_jax.diffusion.coupling, with ot_epsilon; 'pairs' ends each path at the data's
  `noise`, reflow's pairs of data.reflow_pairs, use_reflow) or 'edm' (EDM's weighted x0 loss at
  log-normal noise levels edm_p_mean, edm_p_std); antithetic (time sampling).
config.eval: vlb (bool), vlb_time_samples, ode (bool), ode_exact_trace (bool; else Hutchinson), ode_solver,
  ode_rtol, ode_steps (0: adaptive), sampler
  (ddpm | ddim | euler_maruyama | pc | ode | dpm_solver | edm_heun), sampler_steps (every sampler but ddpm,
  which runs the chain's T steps; strided ancestral sampling is ddim with ddim_eta=1), sampler_ode_solver
  (the ode sampler's and reflow's solver; "": ode_solver, the likelihood's), ddpm_variance
  (large | small), ddim_eta, edm_churn / edm_s_tmin / edm_s_tmax / edm_s_noise / edm_rho (edm_heun), guidance.
  A field set away from its default where these settings leave it unread (another sampler's option,
  another process's parameter: `unread_fields`) is named in a warning when the task is built.
Likelihoods (nats per example, bits/dim on discrete data):
- 'vlb': a DDPM chain's full T-term VLB with the discretized Gaussian decoder (Gaussian density on
  points); a continuous process's ELBO (prior + diffusion + reconstruction at t_min: VDM's decoder on
  images, a Gaussian N(x; z/alpha, sigma^2/alpha^2) on points).
- 'ode': the probability-flow ODE's log-density, on images dequantized uniformly within bins of width
  2 / (K - 1) centred on the levels as trained, with the bin width's Jacobian included (so bits/dim bound
  the discrete data's).
The ledger's `nll_nats` is the VLB on images and the ODE on points (an exact density there);
the other is reported as `vlb_nll_nats` / `ode_nll_nats` (and `ode_bpd`).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from gm_jax.data.dataset import Dataset
from gm_jax.diffusion import guidance as classifier_free
from gm_jax.diffusion import coupling, parameterization, preconditioning, processes
from gm_jax.diffusion.denoiser import Denoiser
from gm_jax.evaluation import ledger
from gm_jax.evaluation.diffusion_likelihood import ode_log_likelihood
from gm_jax.evaluation.metrics import masked_mean
from gm_jax.models.noise_schedule import LearnedGamma
from gm_jax.models.time_embedding import TIME_SCALE
from gm_jax.models.time_mlp import TimeMLP, TimeMLPConfig
from gm_jax.models.unet import UNet, UNetConfig
from gm_jax.objectives import diffusion as objectives
from gm_jax.sampling import diffusion as samplers
from gm_jax.tasks import conditioning
from gm_jax.train import config_checks, cpu_compile, defaults
from gm_jax.train.rng import per_example_keys
from gm_jax.train.task import Likelihood, Task, Update, nonfinite_samples

SAMPLERS = ("ddpm", "ddim", "euler_maruyama", "pc", "ode", "dpm_solver", "edm_heun")
LOSSES = ("denoising", "vdm_elbo", "flow_matching", "edm")
COUPLINGS = ("independent", "ot", "pairs")
# The options only some samplers read (ddpm_variance also the chain's VLB): any other sampler leaves them
# as they are, so a value changed without eval.sampler is named in a warning rather than ignored unseen.
SAMPLER_OPTIONS = {
    "sampler_steps": tuple(s for s in SAMPLERS if s != "ddpm"),  # ddpm runs the chain's own T steps
    "ddpm_variance": ("ddpm",),
    "ddim_eta": ("ddim",),
    **{name: ("edm_heun",) for name in ("edm_churn", "edm_s_tmin", "edm_s_tmax", "edm_s_noise", "edm_rho")},
}
CHAINS = processes.CHAINS
# Each process's own fields (config.process); the others leave them unread.
PROCESS_FIELDS = {"num_steps": CHAINS, "beta_min": ("vp", "subvp"), "beta_max": ("vp", "subvp"),
                  "sigma_min": ("ve", "karras"), "sigma_max": ("ve", "karras"), "rho": ("karras",),
                  "gamma_min": ("vdm",), "gamma_max": ("vdm",), "learned": ("vdm",)}
# Most steps a fixed grid of times in [0, 1] may have: a step of 2^-20 is 16 float32 spacings at t = 1, so
# finer steps' times lose their spacing to rounding (and a typo's billion steps filled memory with its grid).
MAX_STEPS = 2**20
# They start from the SDE or the log-SNR at t = 1, which a path ending in pure noise lacks.
FINITE_LOG_SNR_SAMPLERS = ("euler_maruyama", "pc", "dpm_solver", "edm_heun")


# The network fields only one of the two networks reads.
MLP_FIELDS = ("hidden", "time_dim")
UNET_FIELDS = ("channels", "channel_mults", "num_res_blocks", "attention_resolutions", "dropout",
               "num_groups", "scan_blocks")


def make_network(config):
  m = config.model
  if m.net == "mlp":
    return TimeMLP(TimeMLPConfig(hidden=tuple(m.hidden), time_dim=m.time_dim,
                                 compute_dtype=config.train.compute_dtype, num_classes=m.num_classes))
  if m.net == "unet":
    return UNet(UNetConfig(channels=m.channels, channel_mults=tuple(m.channel_mults),
                           num_res_blocks=m.num_res_blocks,
                           attention_resolutions=tuple(m.attention_resolutions), dropout=m.dropout,
                           num_groups=m.num_groups, compute_dtype=config.train.compute_dtype,
                           num_classes=m.num_classes, scan_blocks=m.scan_blocks))
  raise ValueError(f"unknown config.model.net {m.net!r}; use 'mlp' or 'unet'")


def sampler_ode_solver(ev) -> str:
  """The ODE sampler's solver: eval.sampler_ode_solver, or the likelihood's eval.ode_solver when empty."""
  return ev.sampler_ode_solver or ev.ode_solver


def run_sampler(denoiser: Denoiser, key, shape, ev):
  """Draws samples with config.eval's sampler; returns (samples, nfe)."""
  name, steps = ev.sampler, ev.sampler_steps
  if name == "ddpm":
    return samplers.ddpm_ancestral(denoiser, key, shape, ev.ddpm_variance)
  if name == "ddim":
    return samplers.ddim(denoiser, key, shape, steps, ev.ddim_eta)
  if name == "euler_maruyama":
    return samplers.euler_maruyama(denoiser, key, shape, steps)
  if name == "pc":
    return samplers.predictor_corrector(denoiser, key, shape, steps)
  if name == "ode":
    return samplers.probability_flow_ode(denoiser, key, shape, sampler_ode_solver(ev), steps, ev.ode_rtol,
                                         ev.ode_rtol)
  if name == "dpm_solver":
    return samplers.dpm_solver_pp_2m(denoiser, key, shape, steps)
  if name == "edm_heun":
    return samplers.edm_heun(denoiser, key, shape, steps, ev.edm_churn, ev.edm_s_tmin, ev.edm_s_tmax,
                             ev.edm_s_noise, ev.edm_rho)
  raise ValueError(f"unknown config.eval.sampler {name!r}; choose one of {SAMPLERS}")


def to_levels(y, num_levels: int) -> jax.Array:
  """Model space [-1, 1] back to the nearest of the data's integer levels."""
  return jnp.clip(jnp.round((y + 1.0) * (num_levels - 1) / 2.0), 0, num_levels - 1).astype(jnp.int32)


class DiffusionModel:
  """The config's network and forward process: `denoiser(params)` for losses, samplers, likelihoods."""

  def __init__(self, config):
    pc, self.prediction = config.process, config.model.prediction
    self.num_classes = config.model.num_classes
    if config.model.preconditioning not in ("none", "edm"):
      raise ValueError(f"unknown config.model.preconditioning {config.model.preconditioning!r}; "
                       f"use 'none' or 'edm'")
    self.sigma_data = config.model.sigma_data if config.model.preconditioning == "edm" else None
    if self.sigma_data is not None and self.prediction != "x0":
      raise ValueError("EDM preconditioning makes the network's output an x0 prediction; "
                       "set model.prediction='x0'")
    self.net = make_network(config)
    self.fixed_process = processes.make_process(pc)
    self.learned = pc.name == "vdm" and pc.learned != "fixed"
    self.schedule = LearnedGamma(pc.gamma_min, pc.gamma_max, pc.learned) if self.learned else None
    # VDM's network reads the log-SNR, not t, and predicts the noise as z_t plus its output.
    self.vdm_gamma_range = (pc.gamma_min, pc.gamma_max) if pc.name == "vdm" else None

  def init(self, key, x):
    label = jnp.zeros(x.shape[:1], jnp.int32) if self.num_classes else None
    params = {"net": self.net.init(key, x, jnp.zeros(x.shape[:1]), label_B=label)["params"]}
    if self.learned:
      params["schedule"] = self.schedule.init(key, jnp.zeros((1,)))["params"]
    return params

  def denoiser(self, params, train: bool = False, key=None, label=None, guidance: float = 0.0) -> Denoiser:
    """The network as a Denoiser; a class-conditional one given (B,) `label`s, with classifier-free
    guidance of scale `guidance` (gm_jax.diffusion.guidance)."""
    process = self.fixed_process
    if self.learned:
      process = processes.LogSNRProcess(lambda t: -self.schedule.apply({"params": params["schedule"]}, t))
    rngs = {"dropout": key} if train else {}
    net = lambda x_t, t, y: self.net.apply({"params": params["net"]}, x_t, t, train, y, rngs=rngs)
    if self.vdm_gamma_range is not None and self.sigma_data is None:
      # (EDM's preconditioning gives the network c_noise, a noise level already: read as a time through a
      # learned schedule, it would drift as the schedule trains.)
      net = _reading_the_log_snr(net, process, *self.vdm_gamma_range, self.prediction == "eps")
    if self.sigma_data is not None:
      # EDM embeds its noise label c_noise = ln(s) / 4 itself; the networks scale the time they are given.
      network_of_time = net
      net = preconditioning.precondition(lambda x, c_noise, y: network_of_time(x, c_noise / TIME_SCALE, y),
                                         process, self.sigma_data)
    if label is None:
      return Denoiser(lambda x_t, t: net(x_t, t, None), self.prediction, process)
    return Denoiser(classifier_free.guided(net, self.num_classes, guidance), self.prediction, process, label)

  def sample_labels(self, n: int) -> np.ndarray:
    return conditioning.class_runs(n, self.num_classes)

  def sampling_denoiser(self, params, n: int, guidance: float) -> Denoiser:
    """The denoiser that draws n samples: a class-conditional model's for sample_labels(n), with
    classifier-free guidance of scale `guidance`."""
    label = jnp.asarray(self.sample_labels(n)) if self.num_classes else None
    return self.denoiser(params, label=label, guidance=guidance)


def network_evaluations(sampler_nfe, guidance: float):
  """A sampler's network evaluations per sample: a guided step evaluates the conditional and the
  unconditional model (in one pass over twice the batch), so it counts two."""
  return sampler_nfe * (2 if guidance else 1)


def _reading_the_log_snr(net, process, gamma_min: float, gamma_max: float, add_input: bool):
  """VDM's parameterization (Kingma et al.'s code): the network is given gamma(t) = -log SNR(t) scaled by
  the schedule's initial endpoints, (gamma(t) - gamma_min) / (gamma_max - gamma_min), in place of t, so
  that it sees a noise level whatever the learned schedule's shape; a noise prediction is z_t plus its
  output (z_t is nearly all noise at high noise levels)."""

  def apply(x_t, t, label):
    level = (-process.log_snr(t) - gamma_min) / (gamma_max - gamma_min)
    out = net(x_t, level, label)
    return x_t + out if add_input else out

  return apply


REFLOW_PAIRS_BRANCH = 200  # of the pairs' key: one no training run draws from (gm_jax.train.loop.sample_key)


def draw_reflow_pairs(denoiser: Denoiser, spec, ev, key, num_pairs: int,
                      batch_size: int) -> dict[str, np.ndarray]:
  """Reflow's pairs from a trained flow: `noise` drawn from the prior and `x` where the probability-flow ODE
  (the ODE sampler's solver, eval.sampler_steps steps; 0: adaptive at eval.ode_rtol) carries it, in the data's
  representation (levels for images). Batch i draws its noise with fold_in(fold_in(key,
  REFLOW_PAIRS_BRANCH), i): a run of seed s draws from fold_in(key(s), 0 to 4) and, for
  eval.sample_seed > 0, from 100 on, so pairs drawn with key(s) share no noise with the reflow run that
  trains on them (batch 3 was its sample grid's)."""
  key = jax.random.fold_in(key, REFLOW_PAIRS_BRANCH)
  solve = cpu_compile.jit(lambda x1: samplers.probability_flow_from(
      denoiser, x1, sampler_ode_solver(ev), ev.sampler_steps, ev.ode_rtol, ev.ode_rtol)[0])
  xs, noises = [], []
  for i, start in enumerate(range(0, num_pairs, batch_size)):
    size = min(batch_size, num_pairs - start)
    noise = samplers.prior_sample(denoiser.process, jax.random.fold_in(key, i), (size, *spec.shape))
    x = solve(noise)
    xs.append(np.asarray(to_levels(x, spec.num_levels), np.uint8) if spec.kind == "image" else np.asarray(x))
    noises.append(np.asarray(noise, np.float32))
  return {"x": np.concatenate(xs), "noise": np.concatenate(noises)}


def check_settings(config, dataset: Dataset) -> None:
  """One-line errors for objective and evaluation settings that cannot work, before any network is built."""
  obj, ev = config.objective, config.eval
  if obj.loss not in LOSSES:
    raise ValueError(f"unknown config.objective.loss {obj.loss!r}; choose one of {LOSSES}")
  if obj.coupling not in COUPLINGS:
    raise ValueError(f"unknown config.objective.coupling {obj.coupling!r}; choose one of {COUPLINGS}")
  if obj.coupling != "independent" and obj.loss != "flow_matching":
    raise ValueError(f"objective.coupling={obj.coupling!r} pairs noise with data in the flow-matching loss; "
                     f"set objective.loss='flow_matching' or objective.coupling='independent'")
  if (obj.coupling == "pairs") != ("noise" in dataset.train[np.arange(1)]):
    raise ValueError("objective.coupling='pairs' (reflow) trains on (noise, x) pairs, and only it: set both "
                     "it and data.reflow_pairs (experiments/reflow_pairs.py writes them), or neither")
  if config.model.prediction not in parameterization.KINDS:
    raise ValueError(f"unknown config.model.prediction {config.model.prediction!r}; choose one of "
                     f"{parameterization.KINDS}")
  if obj.loss == "denoising" and obj.weighting not in objectives.WEIGHTINGS:
    raise ValueError(f"unknown config.objective.weighting {obj.weighting!r}; choose one of "
                     f"{objectives.WEIGHTINGS}")
  if obj.loss == "edm" and not obj.edm_p_std > 0:
    # At 0 every example trains at one noise level; a negative std acts as its absolute value.
    raise ValueError(f"objective.edm_p_std={obj.edm_p_std} must be > 0 (the std of the training noise "
                     f"levels' log; EDM's is 1.2)")
  if obj.coupling == "ot" and not obj.ot_epsilon > 0:
    # At 0 the plan underflows to zeros (every example drew the same noise row), below it is no plan.
    raise ValueError(f"objective.ot_epsilon={obj.ot_epsilon} must be > 0 (the OT plan's entropic "
                     f"regularization, relative to the mean cost; 0.01 by default)")
  if ev.sampler not in SAMPLERS:
    raise ValueError(f"unknown config.eval.sampler {ev.sampler!r}; choose one of {SAMPLERS}")
  least_steps = 0 if ev.sampler == "ode" else 1  # ode: 0 is adaptive; ddpm runs the chain's own T steps
  if ev.sampler != "ddpm" and ev.sampler_steps < least_steps:
    raise ValueError(f"eval.sampler_steps={ev.sampler_steps} must be >= {least_steps} for the {ev.sampler} "
                     f"sampler")
  for name in ("sampler_steps", "ode_steps"):
    if ev[name] > MAX_STEPS:
      raise ValueError(f"eval.{name}={ev[name]} must be <= {MAX_STEPS:,}: finer steps than 1/2^20 lose their "
                       f"times' spacing to float32 rounding")
  if ev.sampler == "edm_heun" and (ev.edm_rho <= 0 or ev.edm_churn < 0 or ev.edm_s_noise < 0):
    raise ValueError(f"eval.edm_rho={ev.edm_rho} must be > 0, eval.edm_churn={ev.edm_churn} and "
                     f"eval.edm_s_noise={ev.edm_s_noise} >= 0 for the edm_heun sampler")
  if ev.sampler == "edm_heun" and ev.edm_churn > 0 and ev.edm_s_tmin > ev.edm_s_tmax:
    raise ValueError(f"eval.edm_s_tmin={ev.edm_s_tmin} > eval.edm_s_tmax={ev.edm_s_tmax} leaves no noise "
                     f"level for eval.edm_churn={ev.edm_churn} to act on; give the churn's window low to "
                     f"high")
  if ev.vlb and ev.vlb_time_samples < 1:
    raise ValueError(f"eval.vlb_time_samples={ev.vlb_time_samples} must be >= 1 (or set eval.vlb=False)")
  if ev.ode and ev.ode_steps < 0:
    raise ValueError(f"eval.ode_steps={ev.ode_steps} must be >= 0 (0: adaptive)")
  if ev.ode:
    samplers.check_ode_solver(ev.ode_solver, ev.ode_steps, "eval.ode_steps")
  if ev.sampler == "ode":
    samplers.check_ode_solver(sampler_ode_solver(ev), ev.sampler_steps, "eval.sampler_steps")
  adaptive = (ev.ode and ev.ode_steps == 0) or (ev.sampler == "ode" and ev.sampler_steps == 0)
  if adaptive and not ev.ode_rtol > 0:
    raise ValueError(f"eval.ode_rtol={ev.ode_rtol} must be > 0 for the adaptive ODE solve (0 never ends)")
  if ev.ddpm_variance not in ("large", "small"):
    raise ValueError(f"unknown eval.ddpm_variance {ev.ddpm_variance!r}; use 'large' or 'small'")
  # 'small' takes beta_tilde_2 at the chain's first step (beta_tilde_1 is 0), which a one-step chain lacks.
  if ev.ddpm_variance == "small" and config.process.name in CHAINS and config.process.num_steps == 1:
    raise ValueError("eval.ddpm_variance='small' needs process.num_steps >= 2 (its first step's variance is "
                     "beta_tilde_2); use eval.ddpm_variance='large' for a one-step chain")
  # Beyond 1 the deterministic part's variance sigma_s^2 - c^2 can turn negative (c^2 = eta^2 times the
  # posterior variance); a negative eta acts as its absolute value. Checked whichever the sampler.
  if not 0 <= ev.ddim_eta <= 1:
    raise ValueError(f"eval.ddim_eta={ev.ddim_eta} must be in [0, 1] (0: deterministic DDIM, 1: ancestral)")
  conditional = config.model.num_classes > 0
  if conditional and not 0 <= obj.label_dropout < 1:
    raise ValueError(f"objective.label_dropout={obj.label_dropout} must be in [0, 1) (the rate at which "
                     f"training replaces the label by none)")
  if conditional and ev.guidance and obj.label_dropout == 0:
    raise ValueError("eval.guidance extrapolates away from the unconditional model, which "
                     "objective.label_dropout=0 never trains; set objective.label_dropout > 0 or "
                     "eval.guidance=0")
  edm_scale = config.model.preconditioning == "edm" or obj.loss == "edm"
  if edm_scale and not config.model.sigma_data > 0:
    raise ValueError(f"model.sigma_data={config.model.sigma_data} must be > 0 (the data's standard "
                     f"deviation, which EDM's preconditioning and loss divide by)")
  defaults.warn_unread_options(config, default_config(), unread_fields(config),
                               f"this diffusion config (process {config.process.name!r}, loss {obj.loss!r}, "
                               f"sampler {ev.sampler!r})")


def unread_fields(config) -> dict[str, str]:
  """{field: who reads it} for the process, objective, model and eval fields this config's settings leave
  unread."""
  obj, ev, process = config.objective, config.eval, config.process.name
  chain_vlb = ev.vlb and process in CHAINS
  unread = {f"eval.{name}": f"by the {' | '.join(readers)} sampler" + (
                " and a DDPM chain's eval.vlb" if name == "ddpm_variance" else "")
            for name, readers in SAMPLER_OPTIONS.items()
            if ev.sampler not in readers and not (name == "ddpm_variance" and chain_vlb)}
  unread.update({f"process.{name}": f"by process {' | '.join(readers)}"
                 for name, readers in PROCESS_FIELDS.items() if process not in readers})
  if obj.loss != "denoising":
    unread["objective.weighting"] = "by objective.loss='denoising'"
  if obj.loss != "edm":
    unread.update({f"objective.{name}": "by objective.loss='edm'" for name in ("edm_p_mean", "edm_p_std")})
  if obj.coupling != "ot":
    unread["objective.ot_epsilon"] = "with objective.coupling='ot'"
  if config.model.num_classes == 0:
    unread["objective.label_dropout"] = "by class-conditional models (model.num_classes > 0)"
  other_net = {"mlp": ("unet", UNET_FIELDS), "unet": ("mlp", MLP_FIELDS)}.get(config.model.net)
  if other_net:
    net, fields = other_net
    unread.update({f"model.{name}": f"by model.net={net!r}" for name in fields})
  if config.model.preconditioning != "edm" and obj.loss != "edm":
    unread["model.sigma_data"] = "by model.preconditioning='edm' and objective.loss='edm'"
  if not ev.vlb or process in CHAINS:
    unread["eval.vlb_time_samples"] = "by a continuous process's eval.vlb"
  if ev.sampler == "edm_heun" and ev.edm_churn == 0:
    unread.update({f"eval.{name}": "by eval.edm_churn > 0" for name in ("edm_s_tmin", "edm_s_tmax",
                                                                         "edm_s_noise")})
  if ev.sampler != "ode":
    unread["eval.sampler_ode_solver"] = "by the ode sampler and experiments/reflow_pairs.py"
  if (obj.loss == "edm" and ev.sampler == "edm_heun" and not (ev.ode or ev.vlb)
      and config.model.preconditioning == "edm"):
    # The EDM loss draws noise levels and edm_heun warps them by eval.edm_rho; EDM's preconditioning hands
    # the network c_noise, where without it the network reads the times that rho's warp gives the levels.
    unread["process.rho"] = ("by a loss other than 'edm', a sampler other than edm_heun (whose warp is "
                             "eval.edm_rho), eval.ode, eval.vlb or a network without EDM's "
                             "preconditioning (given times)")
  if not ev.ode:  # ode_solver and ode_rtol serve the ode sampler and reflow pairs too
    unread.update({f"eval.{name}": "by eval.ode=True" for name in ("ode_exact_trace", "ode_steps")})
  return unread


def check_network(config, image_shape) -> None:
  """One-line errors for a network that cannot take the data: the MLP on images (it would pair the time
  embedding of one example with the pixels of others), the U-Net on points, sizes below 1 (a negative
  count of residual blocks looped without end), a U-Net whose downsamplings do not divide the image, or
  whose attention resolutions are none of its own (they were left out without a word)."""
  m = config.model
  if image_shape is None:
    if m.net == "unet":
      raise ValueError("model.net='unet' takes images; these data are points: use model.net='mlp'")
    if m.net == "mlp":
      config_checks.check_sizes(config, {"model.hidden": 1, "model.time_dim": 1})
    return
  if m.net != "unet":
    raise ValueError(f"model.net={m.net!r} takes vectors; images need model.net='unet'")
  config_checks.check_sizes(config, {"model.channels": 1, "model.channel_mults": 1, "model.num_groups": 1,
                                     "model.num_res_blocks": 0, "model.attention_resolutions": 1})
  config_checks.check_rate(config, "model.dropout")
  factor = 2 ** (len(m.channel_mults) - 1)
  if image_shape[0] % factor or image_shape[1] % factor:
    raise ValueError(f"the U-Net's {len(m.channel_mults)} resolutions (model.channel_mults="
                     f"{tuple(m.channel_mults)}) halve the image {len(m.channel_mults) - 1} times, which its "
                     f"{image_shape[0]} x {image_shape[1]} pixels do not allow; use fewer channel_mults or "
                     f"resize the images (data.image_size) to a multiple of {factor}")
  resolutions = tuple(image_shape[0] // 2 ** i for i in range(len(m.channel_mults)))
  if not set(m.attention_resolutions) <= set(resolutions):
    raise ValueError(f"model.attention_resolutions={tuple(m.attention_resolutions)} names a resolution the "
                     f"U-Net does not have: on these {image_shape[0]}-pixel images its levels are "
                     f"{resolutions} (plus attention in the middle block); choose among them, or () for none")


def check_model(config, model: DiffusionModel, conditional: bool) -> None:
  """One-line errors for settings that the model's process or prediction rules out, before training."""
  obj, ev = config.objective, config.eval
  is_chain = isinstance(model.fixed_process, processes.DiscreteDDPM)
  name = config.process.name
  if model.learned and obj.loss != "vdm_elbo":
    raise ValueError("a learned VDM schedule is trained by the ELBO; set objective.loss='vdm_elbo'")
  if ev.sampler == "ddpm" and not is_chain:
    raise ValueError(f"eval.sampler='ddpm' runs a DDPM chain's ancestral steps, which process {name!r} is "
                     f"not; use eval.sampler='ddim' with eval.ddim_eta=1 (ancestral, strided) or another "
                     f"sampler")
  if is_chain and (obj.loss == "vdm_elbo" or obj.loss == "denoising" and obj.weighting == "likelihood"):
    # Their weights are the log-SNR's time derivative, which a chain's grid of T times does not have (the
    # one-sided slopes there overstate the integral by 5-50 %).
    raise ValueError(f"the continuous-time ELBO (objective.loss='vdm_elbo' or weighting='likelihood') needs "
                     f"a continuous process; {name!r} is a DDPM chain, whose bound is eval.vlb: use "
                     f"weighting eps, x0 or v, or a continuous process (vp, vdm, ...)")
  if model.fixed_process.ends_in_pure_noise and model.prediction not in ("v", "velocity"):
    # Converting eps, x0 or score to a velocity divides by alpha or sigma, which are 0 at the path's ends.
    raise ValueError(f"process {name!r} reaches pure noise at t = 1, where a model.prediction="
                     f"{model.prediction!r} gives no velocity (NaN); set model.prediction='velocity' or 'v' "
                     f"(and model.preconditioning='none')")
  if obj.antithetic and obj.loss == "edm":
    raise ValueError("objective.antithetic spreads uniform times over the batch; the EDM loss draws "
                     "log-normal noise levels: set objective.antithetic=False")
  if model.fixed_process.ends_in_pure_noise and ev.vlb:
    raise ValueError(f"eval.vlb needs a finite log-SNR at both ends, which process {name!r} "
                     f"lacks; set eval.vlb=False (the ODE likelihood is exact)")
  if model.fixed_process.ends_in_pure_noise and obj.loss == "vdm_elbo":
    # Its reconstruction term at t_min = 0 divides by sigma(0) = 0: the loss is NaN from the first step.
    raise ValueError(f"objective.loss='vdm_elbo' needs a finite log-SNR at both ends, which process "
                     f"{name!r} lacks; use objective.loss='flow_matching' on it, or a VDM or VP process")
  chain_steps = model.fixed_process.num_steps if is_chain else 0
  if is_chain and ev.sampler == "ddim" and ev.sampler_steps > chain_steps:
    raise ValueError(f"eval.sampler_steps={ev.sampler_steps} exceeds the {chain_steps} steps of the DDPM "
                     f"chain, which DDIM strides over; set eval.sampler_steps <= {chain_steps}")
  if ev.guidance and not conditional:
    raise ValueError("eval.guidance needs a class-conditional model; "
                     "set model.num_classes or eval.guidance=0")
  if ev.sampler in FINITE_LOG_SNR_SAMPLERS:
    samplers.require_finite_log_snr_at_one(model.fixed_process, ev.sampler)


def build(config, dataset: Dataset) -> Task:
  spec = dataset.spec
  if spec.kind not in ("points", "image"):
    raise ValueError(f"diffusion models points or images; data {dataset.name!r} is {spec.kind!r}")
  is_image = spec.kind == "image"
  levels = spec.num_levels
  obj, ev = config.objective, config.eval
  check_settings(config, dataset)
  check_network(config, spec.shape if is_image else None)
  model = DiffusionModel(config)
  denoiser = model.denoiser
  is_chain = isinstance(model.fixed_process, processes.DiscreteDDPM)
  conditional = conditioning.num_classes(config, dataset) > 0
  check_model(config, model, conditional)
  if is_image:
    reconstruction_nll = functools.partial(objectives.vdm_reconstruction_nll, num_levels=levels)
  else:
    reconstruction_nll = objectives.gaussian_reconstruction_nll

  def to_model_space(x):
    """Images' integer levels to [-1, 1]; points unchanged."""
    return x.astype(jnp.float32) * (2.0 / (levels - 1)) - 1.0 if is_image else x

  def elbo_terms(d: Denoiser, x, key):
    if is_chain:
      decoder = objectives.discretized_decoder(levels) if is_image else objectives.gaussian_decoder
      return {"vlb": objectives.ddpm_vlb(d, x, key, ev.ddpm_variance, decoder)}
    # Evaluation samples the diffusion term uniformly in log-SNR (the low-variance form of the same
    # integral) and averages eval.vlb_time_samples draws per example: one draw leaves a standard error
    # of about 0.2 nats on 5,000 toy points.
    draws = jax.lax.map(lambda k: objectives.continuous_vlb_terms(d, x, k, reconstruction_nll, False, True),
                        jax.random.split(key, ev.vlb_time_samples))
    terms = jax.tree.map(lambda v: jnp.mean(v, axis=0), draws)
    return {**terms, "vlb": sum(terms.values())}

  def loss_fn(params, model_state, batch, key):
    x = to_model_space(batch["x"])
    net_key, loss_key, label_key = jax.random.split(key, 3)
    label = None
    if conditional:  # label dropout trains the unconditional model beside the conditional one
      label = classifier_free.drop_labels(label_key, batch["label"], obj.label_dropout, model.num_classes)
    d = denoiser(params["model"], train=True, key=net_key, label=label)
    metrics = {}
    if obj.loss == "denoising":
      per_example = objectives.denoising_loss(d, x, loss_key, obj.weighting, obj.antithetic)
    elif obj.loss == "flow_matching":
      couple = None
      if obj.coupling == "ot":
        couple = lambda k, x0, eps: coupling.ot_coupled_noise(k, x0, eps, batch["mask"], obj.ot_epsilon,
                                                              labels_B=label)  # within each label
      elif obj.coupling == "pairs":  # reflow: each x's own noise, the start of its path under the first flow
        couple = lambda k, x0, eps: coupling.reflow_noise(d.process, x0, batch["noise"])
      per_example = objectives.flow_matching_loss(d, x, loss_key, couple, obj.antithetic)
    elif obj.loss == "edm":
      per_example = objectives.edm_loss(d, x, loss_key, config.model.sigma_data, obj.edm_p_mean,
                                        obj.edm_p_std)
    else:  # vdm_elbo
      terms = objectives.continuous_vlb_terms(d, x, loss_key, reconstruction_nll, obj.antithetic)
      per_example = sum(terms.values())
      metrics = {name: masked_mean(v, batch["mask"]) for name, v in terms.items()}
    total, count = masked_mean(per_example, batch["mask"])
    return total / (count * spec.num_dims), ({"loss_per_dim": (total / spec.num_dims, count), **metrics}, {})

  def eval_fn(params, model_state, batch, key):
    x = to_model_space(batch["x"])
    d = denoiser(params["model"], label=batch["label"] if conditional else None)  # log p(x | label)
    out = {}
    # Every batch comes with the same key: each example draws from its own, keyed by its index in the split,
    # so no two batches share noise and an example's does not depend on how the split is batched.
    keys = jax.vmap(lambda k: jax.random.split(k, 3))(per_example_keys(key, batch["index"]))
    vlb_keys, ode_keys, deq_keys = keys[:, 0], keys[:, 1], keys[:, 2]
    if ev.vlb:
      def one(x1, k, label):  # one example, with its own label
        return elbo_terms(d.with_labels(None if label is None else label[None]), x1[None], k)

      terms = jax.vmap(one)(x, vlb_keys, d.labels)
      out.update({f"vlb_{k}" if k != "vlb" else "vlb_nll_nats": masked_mean(v[:, 0], batch["mask"])
                  for k, v in terms.items()})
    if ev.ode:
      if is_image:  # uniform within the bin of width 2 / (K - 1) centred on each level as trained
        u = jax.vmap(lambda k: jax.random.uniform(k, x.shape[1:]))(deq_keys)
        y = x + (u - 0.5) * (2.0 / (levels - 1))
        log_jacobian = spec.num_dims * math.log(2.0 / (levels - 1))
      else:
        y, log_jacobian = x, 0.0
      logp, _ = ode_log_likelihood(d, y, ode_keys, ev.ode_exact_trace, ev.ode_solver, ev.ode_steps,
                                   ev.ode_rtol, ev.ode_rtol)
      out["ode_nll_nats"] = masked_mean(-(logp + log_jacobian), batch["mask"])
    return out

  def sample(params, model_state, key, n):
    x, nfe = run_sampler(model.sampling_denoiser(params["model"], n, ev.guidance), key, (n, *spec.shape), ev)
    info = {"nfe": network_evaluations(nfe, ev.guidance)}
    if is_image:  # the rounding to levels hides a non-finite sample from the trainer's quality report
      info["nonfinite"] = nonfinite_samples(x)
      x = to_levels(x, levels)
    return x, info

  def init(key, batch):
    return {"model": {"params": model.init(key, to_model_space(jnp.asarray(batch["x"][:1])))}}

  # The ledger entry is the VLB (images) or the ODE (points), whichever is evaluated; the other stays in
  # the summary under its own name (with its bits/dim on images).
  preferred = ("vlb", "ode") if is_image else ("ode", "vlb")
  present = [name for name in preferred if ev[name]]
  likelihood = (Likelihood(f"{present[0]}_nll_nats", present[0], spec.num_dims, is_image,
                           ledger.likelihood_of(given_label=conditional)) if present else None)

  def summarize(means):
    out = {"sampler": ev.sampler}
    if is_image and len(present) == 2:
      out[f"{present[1]}_bpd"] = ledger.bits_per_dim(means[f"{present[1]}_nll_nats"], spec.num_dims)
    return out

  return Task(init=init, updates=(Update("model", loss_fn),), eval_fn=eval_fn, likelihood=likelihood,
              summarize=summarize, sample_fn=sample,
              sample_labels=model.sample_labels if conditional else None)


def default_config():
  """The trainer's defaults plus the diffusion fields; experiment configs start from this."""
  import ml_collections

  from gm_jax.train.defaults import base_config

  config = base_config()
  config.task = "diffusion"
  config.process = ml_collections.ConfigDict()
  config.process.name = "ddpm_linear"
  config.process.num_steps = 1000
  config.process.beta_min = 0.1
  config.process.beta_max = 20.0
  config.process.sigma_min = 0.01
  config.process.sigma_max = 50.0
  config.process.gamma_min = -13.3
  config.process.gamma_max = 5.0
  config.process.learned = "fixed"
  config.process.rho = 7.0  # karras: the warp of its noise levels
  config.model.net = "mlp"
  config.model.prediction = "eps"
  config.model.hidden = (256, 256, 256)
  config.model.time_dim = 64
  config.model.channels = 64
  config.model.channel_mults = (1, 2)
  config.model.num_res_blocks = 2
  config.model.attention_resolutions = (4,)
  config.model.dropout = 0.1
  config.model.num_groups = 32
  config.model.scan_blocks = False  # unet: runs of identical blocks as one nn.scan (compiled once)
  # 'edm': Karras et al.'s c_skip, c_out, c_in, c_noise around the network
  config.model.preconditioning = "none"
  config.model.sigma_data = 0.5  # the data's standard deviation, for EDM's preconditioning and loss
  config.objective = ml_collections.ConfigDict()
  config.objective.loss = "denoising"
  config.objective.weighting = "eps"
  config.objective.antithetic = False
  config.objective.edm_p_mean = -1.2  # loss 'edm': ln(noise level) ~ N(p_mean, p_std^2)
  config.objective.edm_p_std = 1.2
  config.objective.coupling = "independent"  # flow_matching: 'ot' (minibatch OT) or 'pairs' (reflow's)
  config.objective.ot_epsilon = 0.01  # the OT plan's entropic regularization, relative to the mean cost
  config.objective.label_dropout = 0.1  # class-conditional: the rate at which the label is replaced by none
  config.eval.vlb = True
  config.eval.vlb_time_samples = 16  # diffusion-term draws per example for a continuous-time VLB
  config.eval.ode = True
  config.eval.ode_exact_trace = True
  config.eval.ode_solver = "tsit5"
  config.eval.ode_rtol = 1e-5
  config.eval.ode_steps = 0  # 0: adaptive (tsit5, dopri5); > 0: fixed steps (euler, heun, or any solver)
  config.eval.sampler = "ddpm"
  config.eval.sampler_steps = 100
  config.eval.sampler_ode_solver = ""  # the ode sampler's solver ("": eval.ode_solver, the likelihood's)
  config.eval.ddpm_variance = "large"
  config.eval.ddim_eta = 0.0
  config.eval.edm_churn = 0.0  # edm_heun: S_churn (0: deterministic), S_tmin, S_tmax, S_noise, rho
  config.eval.edm_s_tmin = 0.0
  config.eval.edm_s_tmax = 1e9
  config.eval.edm_s_noise = 1.0
  config.eval.edm_rho = 7.0
  config.eval.guidance = 0.0  # classifier-free guidance scale w of class-conditional samples (0: none)
  return config


def tiny(config) -> None:
  """The diffusion family's `:tiny` size: one U-Net resolution (tests/models/test_unet.py covers the
  others), 8 channels in 2 groups, 20 discrete steps, and every evaluation path in its fewest steps."""
  unread = unread_fields(config)  # the fields no setting reads stay at their defaults (no warning)
  sizes = dict(hidden=(16, 16), time_dim=8, channels=8, channel_mults=(1,), num_res_blocks=1,
               attention_resolutions=(), num_groups=2)
  config.model.update({name: size for name, size in sizes.items() if f"model.{name}" not in unread})
  config.eval.ode_solver = "heun"
  if "eval.ode_steps" not in unread:
    config.eval.ode_steps = 2
  if "process.num_steps" not in unread:
    config.process.num_steps = 20
  if "eval.vlb_time_samples" not in unread:
    config.eval.vlb_time_samples = 2
  if "eval.sampler_steps" not in unread:  # 0 (adaptive) too: 4 fixed
    config.eval.sampler_steps = min(config.eval.sampler_steps or 4, 4)


def use_vdm(config, learned: str, sampler_steps: int) -> None:
  """VDM's recipe (Kingma et al. 2021): its process with a `learned` noise schedule, trained by the
  continuous-time ELBO with antithetic times, sampled by DDIM in sampler_steps steps."""
  config.process.update(name="vdm", learned=learned)
  config.objective.update(loss="vdm_elbo", antithetic=True)
  config.eval.update(sampler="ddim", sampler_steps=sampler_steps)


def use_flow_matching(config, path: str = "linear_interpolant") -> None:
  """Flow matching's recipe: an interpolant `path`, a network predicting its velocity, the conditional
  flow-matching loss, samples by 20 fixed steps of the likelihood's ODE solver and the exact likelihood by
  the probability-flow ODE (the VLB is not defined on a path that starts with sigma = 0)."""
  config.process.name = path
  config.model.prediction = "velocity"
  config.objective.loss = "flow_matching"
  config.eval.update(vlb=False, sampler="ode", sampler_steps=20)


def use_reflow(config, pairs_path: str) -> None:
  """Reflow (Liu et al. 2023): a flow-matching config trained again on the (noise, x) pairs of its first
  flow's ODE (experiments/reflow_pairs.py writes them to pairs_path), so that each path is a straight line
  the new flow can follow in few steps (2-rectified flow)."""
  config.data.reflow_pairs = pairs_path
  config.objective.coupling = "pairs"


def use_edm(config, sampler_steps: int = 18) -> None:
  """EDM's recipe (Karras et al. 2022, "config F" of Table 2 without its architecture): noise levels from
  0.002 to 80 warped by rho = 7, the preconditioned network as an x0 prediction, the log-normal training
  noise levels and loss weighting, and the deterministic Heun sampler in `sampler_steps` levels
  (2 sampler_steps - 1 network evaluations: 35 for 18)."""
  config.process.update(name="karras", sigma_min=0.002, sigma_max=80.0, rho=7.0)
  config.model.update(preconditioning="edm", prediction="x0", sigma_data=0.5)
  config.objective.loss = "edm"
  config.eval.update(sampler="edm_heun", sampler_steps=sampler_steps)
