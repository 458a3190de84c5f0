"""The diffusion task's evaluation on image levels, with the exact denoiser of isotropic Gaussian data in
place of the network: the dequantized ODE bound against its closed form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.data.dataset import DataSpec, Dataset
from gm_jax.data.pipeline import ArraySource
from gm_jax.tasks import diffusion as diffusion_task
from tests.conftest import load_config
from tests.diffusion.gaussian import isotropic_denoiser
from tests.diffusion.recording import TimeRecordingNetwork

LEVELS, SHAPE = 5, (2, 2, 1)
MEAN, VAR = 0.2, 0.5  # the data N(MEAN, VAR I) in model space, whose exact denoiser stands in for the network


def _task(monkeypatch, num_examples: int, process: str = "vp", num_steps: int = 1000, **eval_fields):
  exact = lambda self, params, train=False, key=None, label=None: isotropic_denoiser(self.fixed_process, MEAN,
                                                                                     VAR)
  monkeypatch.setattr(diffusion_task.DiffusionModel, "denoiser", exact)
  config = diffusion_task.default_config()
  config.process.update(name=process, num_steps=num_steps)
  config.model.net = "unet"  # the network images need (the exact denoiser above stands in for it)
  config.model.attention_resolutions = ()  # the defaults' (4,) is no resolution of these 2 x 2 images
  # The default ddpm sampler needs a DDPM chain; DDIM takes at most a chain's steps.
  config.eval.update(sampler="ddim", sampler_steps=min(config.eval.sampler_steps, num_steps), **eval_fields)
  x = np.random.default_rng(0).integers(0, LEVELS, (num_examples, *SHAPE)).astype(np.int32)
  source = ArraySource({"x": x})
  dataset = Dataset("levels", source, source, DataSpec("image", SHAPE, LEVELS))
  return diffusion_task.build(config, dataset), x


def _batch(x, start=0):
  return {"x": x, "index": np.arange(start, start + len(x)), "mask": np.ones(len(x), np.float32)}


def test_ode_bound_dequantizes_within_bins_centred_on_the_training_levels(monkeypatch):
  """Level k is trained at c_k = 2k / (K - 1) - 1, so its bin is [c_k - w/2, c_k + w/2] with w = 2 / (K - 1),
  and -log P(k) <= E_u[-log p(c_k + w (u - 1/2))] - log w per dimension. For the Gaussian density
  p = N(a MEAN, V) at t_min the expectation is 0.5 log(2 pi V) + ((c_k - a MEAN)^2 + w^2 / 12) / (2 V)."""
  task, x = _task(monkeypatch, 512, vlb=False, ode=True, ode_exact_trace=True, ode_solver="tsit5")
  total, count = jax.jit(task.eval_fn)({"model": {}}, {}, _batch(x), jax.random.key(0))["ode_nll_nats"]

  process = diffusion_task.processes.VPSDE()
  a = float(process.alpha(process.t_min))
  v = a**2 * VAR + float(process.sigma2(process.t_min))
  w = 2.0 / (LEVELS - 1)
  c = 2.0 * x.astype(np.float64) / (LEVELS - 1) - 1.0
  per_dim = 0.5 * np.log(2 * np.pi * v) + ((c - a * MEAN) ** 2 + w**2 / 12) / (2 * v) - np.log(w)
  expected = per_dim.reshape(len(x), -1).sum(-1).mean()
  # One uniform draw per dimension: the Monte Carlo standard error of the mean is about 0.01 nats here;
  # bins of width 2 / K from -1 (level k owning [2k / K - 1, 2(k + 1) / K - 1]) give 0.15 nats more.
  assert float(total / count) == pytest.approx(expected, abs=0.05)


def test_evaluation_draws_each_examples_randomness_from_its_index(monkeypatch):
  """Every eval batch gets the same key, so the draws (VLB noise and times, dequantization, Hutchinson
  probes) come from the example's index in the split: a batch's draws are independent of the other
  batches', and an example's do not depend on how the split is cut into batches (or devices)."""
  task, x = _task(monkeypatch, 8, "ddpm_linear", 20, vlb=True, ode=True, ode_exact_trace=False,
                  ode_solver="heun", ode_steps=4)  # fixed steps: each example's solve is its own
  eval_fn = jax.jit(task.eval_fn)

  def sums(x, start):
    metrics = eval_fn({"model": {}}, {}, _batch(x, start), jax.random.key(0))
    return {name: float(total) for name, (total, _) in metrics.items()}

  whole, first, second = sums(x, 0), sums(x[:4], 0), sums(x[4:], 4)
  assert set(whole) == {"vlb_nll_nats", "ode_nll_nats"}
  for name in whole:
    assert first[name] + second[name] == pytest.approx(whole[name], rel=1e-5), name
  # The same images at other positions of the split (e.g. in the next batch) get other draws.
  later = sums(x, 8)
  for name in whole:
    assert abs(later[name] - whole[name]) > 1e-3 * abs(whole[name]), name



@pytest.mark.parametrize("name", ["digits_vdm", "toy2d_vdm"])
def test_the_vdm_network_reads_the_scaled_log_snr_and_adds_z_to_its_noise_prediction(name):
  """Kingma et al.'s code: the score network gets (gamma(t) - gamma_min) / (gamma_max - gamma_min) with
  gamma = -log SNR of the (learned) schedule and the config's initial endpoints, and predicts eps as z_t
  plus its output."""
  config = load_config(name, "tiny")
  model = diffusion_task.DiffusionModel(config)
  x_t = jax.random.normal(jax.random.key(0), (3, *((8, 8, 1) if name == "digits_vdm" else (2,))))
  params = model.init(jax.random.key(1), x_t)
  params["schedule"] = jax.tree.map(lambda p: p * 1.3, params["schedule"])  # a schedule moved by training
  model.net = TimeRecordingNetwork()
  t = jnp.array([0.05, 0.5, 0.95])
  denoiser = model.denoiser(params)
  _, eps = denoiser.x0_and_eps(x_t, t)
  gamma = -np.asarray(denoiser.process.log_snr(t))
  lo, hi = config.process.gamma_min, config.process.gamma_max
  np.testing.assert_allclose(model.net.times[0], (gamma - lo) / (hi - lo), rtol=1e-5)
  assert not np.allclose(model.net.times[0], np.asarray(t), atol=0.05)
  np.testing.assert_allclose(eps, x_t, rtol=1e-6)
