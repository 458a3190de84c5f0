"""Reflow (2-rectified flow), against the Gaussian's closed forms: the first flow's ODE carries noise z to
T(z) = mu + Sigma^(1/2) z, its paths are curved (one Euler step misses), and the flow trained on the
pairs (z, T(z)) has straight paths, a zero flow-matching loss and exact one-step samples. Then the pieces
a run uses: pairs replacing a data set's training split, the task's checks, and the pairs script."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import linalg

from gm_jax import data as data_lib
from gm_jax import tasks
from gm_jax.data import reflow_pairs
from gm_jax.data.dataset import DataSpec
from gm_jax.diffusion import processes
from gm_jax.diffusion.denoiser import Denoiser
from gm_jax.objectives import diffusion as objectives
from gm_jax.sampling import diffusion as samplers
from gm_jax.tasks import diffusion
from gm_jax.train import loop
from tests.conftest import REPO, damage_compressed_archive, load_config, run_main
from tests.diffusion.gaussian import MU, SIGMA, exact_field

PATH = processes.LinearInterpolant()
ROOT = linalg.sqrtm(SIGMA.astype(np.float64)).real


def _transport(z):
  return MU + np.asarray(z) @ ROOT.T


def _straight_field() -> Denoiser:
  """The 2-rectified flow's exact velocity: on x_t = (1 - t) T(z) + t z the noise is
  z = ((1 - t) Sigma^(1/2) + t I)^(-1) (x_t - (1 - t) mu), and the velocity z - T(z)."""
  root = jnp.asarray(ROOT, jnp.float32)

  def velocity(x_t, t):
    matrices = (1 - t)[:, None, None] * root + t[:, None, None] * jnp.eye(2)
    z = jnp.linalg.solve(matrices, (x_t - (1 - t)[:, None] * MU)[..., None])[..., 0]
    return z - (MU + z @ root.T)

  return Denoiser(velocity, "velocity", PATH)


def test_pairs_of_the_first_flow_follow_the_closed_form_transport_and_reflow_makes_one_step_exact():
  ev = load_config("toy2d_flow_matching").eval
  ev.update(ode_solver="tsit5", sampler_steps=0, ode_rtol=1e-6)
  pairs = diffusion.draw_reflow_pairs(exact_field(PATH), DataSpec("points", (2,)), ev, jax.random.key(0),
                                      600, 256)
  assert pairs["x"].shape == pairs["noise"].shape == (600, 2)
  np.testing.assert_allclose(pairs["x"], _transport(pairs["noise"]), atol=2e-4)

  z = pairs["noise"][:200]
  one_euler_step = lambda field: np.asarray(
      samplers.probability_flow_from(field, jnp.asarray(z), "euler", 1)[0])
  assert np.abs(one_euler_step(exact_field(PATH)) - _transport(z)).max() > 0.1  # the first flow's paths bend
  np.testing.assert_allclose(one_euler_step(_straight_field()), _transport(z), atol=1e-5)

  x0 = jnp.asarray(pairs["x"])
  given = lambda key, x, eps: jnp.asarray(pairs["noise"])
  losses = objectives.flow_matching_loss(_straight_field(), x0, jax.random.key(1), given)
  assert float(jnp.max(losses)) < 1e-8  # each pair's target is the field: nothing left to average
  independent = objectives.flow_matching_loss(_straight_field(), x0, jax.random.key(1))
  assert float(jnp.mean(independent)) > 0.1


def test_pairs_share_no_noise_with_the_run_of_their_seed():
  """Pairs drawn with key(s) trained a run of seed s whose own draws come from fold_in(key(s), stream):
  batch 3's noise was that run's sample grid's initial noise."""
  ev = load_config("toy2d_flow_matching").eval
  ev.update(ode_solver="euler", sampler_steps=1)
  noise = diffusion.draw_reflow_pairs(exact_field(PATH), DataSpec("points", (2,)), ev, jax.random.key(0),
                                      4 * 8, 4)["noise"].reshape(8, 4, 2)
  base = jax.random.key(0)
  run_keys = [jax.random.fold_in(base, s) for s in range(5)] + [loop.sample_key(base, s, 1) for s in (3, 4)]
  for key in run_keys:
    drawn = np.asarray(samplers.prior_sample(PATH, key, (4, 2)))
    assert not any(np.allclose(batch, drawn) for batch in noise)


def test_the_task_pairs_each_example_with_its_own_noise(tmp_path, monkeypatch):
  """coupling='pairs': the task's loss takes each x's noise from its pair, so the straight field leaves
  nothing (independent noise would leave the loss above)."""
  monkeypatch.setattr(diffusion.DiffusionModel, "denoiser", lambda self, *a, **k: _straight_field())
  z = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
  np.savez(tmp_path / "pairs.npz", x=_transport(z).astype(np.float32), noise=z)
  config = load_config("toy2d_flow_matching", "tiny")
  assert config.process.name == "linear_interpolant"  # the path _straight_field follows
  diffusion.use_reflow(config, str(tmp_path / "pairs.npz"))
  batch = {**data_lib.load_dataset(config.data).train[np.arange(64)], "index": np.arange(64),
           "mask": np.ones(64, np.float32)}
  loss = lambda: float(diffusion.build(config, data_lib.load_dataset(config.data)).updates[0].loss_fn(
      {"model": {}}, {}, batch, jax.random.key(1))[0])
  assert loss() < 1e-8
  config.objective.coupling, config.data.reflow_pairs = "independent", ""
  assert loss() > 0.1


@pytest.mark.parametrize("process", ["linear_interpolant", "vp", "ve", "karras"])
def test_each_training_path_ends_at_its_pairs_start(tmp_path, monkeypatch, process):
  """A pair's noise is a draw of the prior, N(0, prior_std^2 I): the task's coupling turns it into the eps
  whose path x_t = alpha(t) x + sigma(t) eps reaches it at t = 1 (taken as eps itself, a VE or EDM path
  ended 50 or 80 times too far out)."""
  config = load_config("toy2d_flow_matching", "tiny")
  config.process.name = process
  x = np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32)
  path = processes.make_process(config.process)
  noise = np.asarray(samplers.prior_sample(path, jax.random.key(0), (8, 2)))
  np.savez(tmp_path / "pairs.npz", x=x, noise=noise)
  diffusion.use_reflow(config, str(tmp_path / "pairs.npz"))
  captured = {}

  def capture(denoiser, x0, key, couple, antithetic):
    captured["eps"] = couple(key, x0, jnp.zeros_like(x0))
    return jnp.zeros(x0.shape[:1])

  monkeypatch.setattr(objectives, "flow_matching_loss", capture)
  dataset = data_lib.load_dataset(config.data)
  task = diffusion.build(config, dataset)
  batch = {**dataset.train[np.arange(8)], "index": np.arange(8), "mask": np.ones(8, np.float32)}
  params = task.init(jax.random.key(0), batch)
  task.updates[0].loss_fn({k: v["params"] for k, v in params.items()}, {}, batch, jax.random.key(1))
  end = path.marginal(jnp.asarray(x), jnp.ones(8), captured["eps"])
  np.testing.assert_allclose(end, noise, rtol=1e-5, atol=1e-5 * path.prior_std)


def test_pairs_replace_the_training_split_and_are_checked(tmp_path):
  config = load_config("toy2d_flow_matching", "tiny")
  dataset = data_lib.load_dataset(config.data)
  path = tmp_path / "pairs.npz"
  np.savez(path, x=np.ones((10, 2), np.float32), noise=np.zeros((10, 2), np.float64))
  reflowed = reflow_pairs.with_reflow_pairs(dataset, str(path))
  assert len(reflowed.train) == 10 and reflowed.test is dataset.test and reflowed.spec is dataset.spec
  # Sample quality's data floor (and a train reference) stays the real data, not the first flow's samples.
  assert reflowed.train_examples is dataset.train and dataset.train_examples is dataset.train
  exp = loop.Experiment(config, tmp_path / "run", lambda c, d: diffusion.build(c, d))
  exp.dataset = reflowed
  assert exp._floor_split is dataset.train
  exp.config.eval.quality_reference = "train"
  assert exp._reference_split is dataset.train
  exp.checkpointer.close()
  assert reflowed.train[np.arange(2)]["noise"].dtype == np.float32
  np.savez(tmp_path / "bad.npz", x=np.ones((10, 3), np.float32), noise=np.zeros((10, 3)))
  with pytest.raises(ValueError, match="examples of shape \\(2,\\); draw the pairs from a run on this data"):
    reflow_pairs.with_reflow_pairs(dataset, str(tmp_path / "bad.npz"))
  with pytest.raises(FileNotFoundError, match="write one with experiments/reflow_pairs.py"):
    reflow_pairs.with_reflow_pairs(dataset, str(tmp_path / "missing.npz"))
  np.savez_compressed(tmp_path / "damaged.npz", x=np.ones((10, 2), np.float32), noise=np.zeros((10, 2)))
  damage_compressed_archive(tmp_path / "damaged.npz")
  with pytest.raises(ValueError, match=r"cannot read the reflow pairs .*damaged.npz' \(error\); write them"):
    reflow_pairs.with_reflow_pairs(dataset, str(tmp_path / "damaged.npz"))
  config.objective.coupling = "pairs"
  with pytest.raises(ValueError, match="set both it and data.reflow_pairs"):
    diffusion.build(config, dataset)
  config.objective.coupling = "independent"
  with pytest.raises(ValueError, match="set both it and data.reflow_pairs"):
    diffusion.build(config, reflowed)


def test_pairs_files_are_never_overwritten(tmp_path):
  pairs = {"x": np.ones((3, 2), np.float32), "noise": np.zeros((3, 2), np.float32)}
  out = reflow_pairs.write_pairs(pairs, str(tmp_path / "pairs.npz"))
  with pytest.raises(FileExistsError, match="pairs are never overwritten"):
    reflow_pairs.write_pairs({"x": np.zeros((1, 2)), "noise": np.zeros((1, 2))}, str(out))
  with np.load(out) as stored:
    np.testing.assert_array_equal(stored["x"], pairs["x"])
  assert [p.name for p in tmp_path.iterdir()] == ["pairs.npz"]


def test_reflow_from_a_trained_run_end_to_end(tmp_path):
  """Train a tiny flow, write its pairs with the script, train the reflow on them."""
  config = load_config("toy2d_flow_matching", "tiny")
  config.train.progress_bar = False
  first, pairs, second = tmp_path / "first", tmp_path / "pairs.npz", tmp_path / "second"
  tasks.train(config, first)
  script, tiny = (REPO / "experiments" / "reflow_pairs.py",
                  "--config=experiments/configs/toy2d_flow_matching.py:tiny")
  refused = run_main(tiny, f"--workdir={first}", f"--out={pairs}", f"--config.seed={config.seed + 1}",
                     script=script, check=False)  # not the run's config
  assert refused.returncode == 1 and not pairs.exists()
  assert refused.stderr.strip().splitlines() == [  # one line, not under the script's whole help text
      f"error: workdir {first} was trained with a different config (seed (stored {config.seed}, now "
      f"{config.seed + 1})); only eval.* and data.eval_stride may change after "
      f"training: pass the stored config.json's values"]
  # The progress bar may differ from the run's (it was off there).
  run_main(tiny, f"--workdir={first}", "--num_pairs=300", f"--out={pairs}", script=script)
  with np.load(pairs) as stored:
    assert stored["x"].shape == stored["noise"].shape == (300, 2)
  diffusion.use_reflow(config, str(pairs))
  summary = tasks.train(config, second)
  assert summary["step"] == config.train.num_steps and np.isfinite(summary["nll_nats"])


def test_damaged_or_out_of_range_pairs_are_one_line(tmp_path):
  """A file cut short in copying was a BadZipFile traceback; levels past the data's and labels past its
  classes trained without a word."""
  digits = data_lib.load_dataset(load_config("digits_flow_matching_conditional", "tiny").data)
  noise = np.zeros((2, 8, 8, 1), np.float32)
  good = tmp_path / "good.npz"
  np.savez(good, x=np.zeros((2, 8, 8, 1), np.uint8), noise=noise, label=np.array([3, 9]))
  (tmp_path / "cut.npz").write_bytes(good.read_bytes()[:300])
  np.savez(tmp_path / "levels.npz", x=np.full((2, 8, 8, 1), 200, np.uint8), noise=noise)
  np.savez(tmp_path / "labels.npz", x=np.zeros((2, 8, 8, 1), np.uint8), noise=noise, label=np.array([3, 37]))
  np.savez(tmp_path / "extra.npz", x=np.zeros((2, 8, 8, 1), np.uint8), noise=noise, labels=np.array([3, 9]))
  assert len(reflow_pairs.with_reflow_pairs(digits, str(good)).train) == 2
  for name, message in [("cut", r"cannot read the reflow pairs .*cut.npz' \(BadZipFile\); write them again"),
                        ("levels", r"x in .* holds levels 200 to 200, but data 'digits' has 17 \(0 to 16\)"),
                        ("labels", r"label in .* holds classes 3 to 37, but data 'digits' has 10 \(0 to 9\)"),
                        ("extra", r"holds \['labels', 'noise', 'x'\]; reflow pairs hold x and noise")]:
    with pytest.raises(ValueError, match=message):
      reflow_pairs.with_reflow_pairs(digits, str(tmp_path / f"{name}.npz"))
