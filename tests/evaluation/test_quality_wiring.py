"""Sample quality through the trainer: digits models are judged in FD-digits beside the data floor, the
paper configs' FID protocol runs on a (random) Inception network, and missing weights fail before training."""

import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from gm_jax import data as data_lib
from gm_jax import tasks
from gm_jax.evaluation import feature_spaces, quality_report
from gm_jax.evaluation import inception_weights as iw
from gm_jax.evaluation.sample_quality import frechet_distance
from gm_jax.tasks import classifier, conditioning
from gm_jax.train import loop, sharding
from gm_jax.train.dispatch import PROGRAMS_AHEAD
from tests.conftest import load_config, without_wall_clock
from tests.models.test_inception import _random_leaf


def test_digits_run_reports_fd_digits_and_eval_recomputes_it(tmp_path, monkeypatch):
  config = load_config("digits_vae", "tiny")
  config.train.progress_bar = False
  config.eval.quality_samples = 200
  config.eval.quality_batch_size = 128  # two compiled chunks, the second one trimmed
  summary = tasks.train(config, str(tmp_path))
  assert summary["feature_space"] == "digits" and summary["num_samples"] == 200
  assert summary["floor_num_samples"] == 200 and summary["num_reference"] == 300
  # A few steps of a VAE are far from the data: worse than 200 real training digits on every axis.
  assert summary["fd"] > 2 * summary["fd_floor"] > 0
  assert summary["precision"] < summary["precision_floor"]
  assert summary["inception_score"] < summary["inception_score_floor"] <= 10
  assert summary["sample_ms_per_1000"] > 0 and "bpd" in summary
  assert 0 < summary["fd_std_floor"] < summary["fd_floor"] and 0 < summary["fd_std"] < summary["fd"]
  # The floor's digits are the fixed random subset that the shipped network's recorded floor uses.
  exp = tasks.experiment(config, tmp_path, read_only=True)
  assert classifier.data_floor_fd(exp.feature_space, exp.dataset, 200) == pytest.approx(summary["fd_floor"],
                                                                                         rel=1e-5)
  reference, floor = exp.quality_real_sets(200)  # the sets benchmarks.diffusion_samplers judges by too
  embed = lambda x: exp.feature_space.embed(x)[0]
  assert len(reference) == summary["num_reference"] and len(floor["x"]) == summary["floor_num_samples"]
  assert frechet_distance(embed(floor["x"]), embed(reference)) == pytest.approx(summary["fd_floor"], rel=1e-5)
  exp.checkpointer.close()
  step = config.train.num_steps
  training_picture = (tmp_path / "samples" / f"quality_step_{step:07d}.png").read_bytes()
  evaluated = tasks.evaluate(config, str(tmp_path))
  assert without_wall_clock(evaluated) == without_wall_clock(summary)
  # The evaluation's judged samples have a file of their own; the training's stays as it was.
  assert (tmp_path / "samples" / f"eval_quality_step_{step:07d}.png").exists()
  assert (tmp_path / "samples" / f"quality_step_{step:07d}.png").read_bytes() == training_picture
  assert json.loads((tmp_path / f"eval_step_{step:07d}.json").read_text())["fd"] == summary["fd"]
  # Samples that hold NaN are no samples to judge: their metrics are NaN (null in the JSON), the floor's
  # are as before. The VAE's samples are floating-point, so the trainer counts them itself.
  draw = loop.Experiment._draw_samples

  def with_nan(self, state, n):
    samples, labels, info, seconds = draw(self, state, n)
    return np.where(np.arange(n)[:, None, None, None] < 10, np.nan, samples), labels, info, seconds

  monkeypatch.setattr(loop.Experiment, "_draw_samples", with_nan)
  broken = tasks.evaluate(config, str(tmp_path))
  assert broken["nonfinite_sample_fraction"] == 10 / 200 and broken["fd_floor"] == summary["fd_floor"]
  for name in ("fd", "kid", "precision", "recall", "density", "coverage", "inception_score"):
    assert np.isnan(broken[name]), name
  assert json.loads((tmp_path / f"eval_step_{step:07d}_2.json").read_text())["fd"] is None


def _initial_sampler(config):
  """(params -> the task's 4 samples and info, the task's initial params) of a config."""
  dataset = data_lib.load_dataset(config.data)
  task = tasks.build(config, dataset)
  batch = {**dataset.train[np.arange(2)], "index": np.arange(2), "mask": np.ones(2, np.float32)}
  variables = task.init(jax.random.key(0), batch)
  params = {net: v["params"] for net, v in variables.items()}
  model_state = {net: {k: c for k, c in v.items() if k != "params"} for net, v in variables.items()}
  return jax.jit(lambda params: task.sample_fn(params, model_state, jax.random.key(1), 4)), params


@pytest.mark.parametrize("name", ["toy2d_realnvp", "digits_glow", "digits_pixelcnn"])
def test_a_sampling_temperature_is_reported_beside_the_samples_quality(name):
  """Tempered samples (glow_cifar10's 0.7) score differently from the model's own: the summary says which."""
  config = load_config(name, "tiny")
  config.eval.sample_temperature = 0.7
  sample, params = _initial_sampler(config)
  assert float(sample(params)[1]["sample_temperature"]) == pytest.approx(0.7)


@pytest.mark.parametrize("name", ["digits_ddpm", "digits_dcgan", "digits_realnvp"])
def test_samples_rounded_to_levels_report_how_many_were_non_finite_before(name):
  """Rounded to levels, a NaN sample looks like any other; the sampler's info says how many there were."""
  sample, params = _initial_sampler(load_config(name, "tiny"))
  for value, nonfinite in ((0.0, False), (np.nan, True)):
    samples, info = sample(jax.tree.map(lambda p: p + value, params))
    assert samples.dtype == jnp.int32 and np.asarray(info["nonfinite"]).tolist() == [nonfinite] * 4


def _experiment_drawing(sample_fn, chunk: int, num_classes: int = 0, kind: str = "points"):
  """An Experiment whose task draws with sample_fn in chunks of `chunk` (only what _draw_samples reads), of
  data of that kind."""
  exp = object.__new__(loop.Experiment)
  exp.dataset = types.SimpleNamespace(spec=types.SimpleNamespace(kind=kind))
  exp.config = load_config("toy2d_gmm", "tiny")
  exp.config.eval.quality_batch_size = chunk
  exp.config.model.num_classes = num_classes
  exp.use_ema, exp.base_key, exp._samplers, exp.mesh = False, jax.random.key(0), {}, sharding.make_mesh()
  labels = (lambda n: conditioning.class_runs(n, num_classes)) if num_classes else None
  exp.task = types.SimpleNamespace(sample_fn=sample_fn, sample_labels=labels)
  return exp, types.SimpleNamespace(params=lambda use_ema: {}, model_state=lambda: {})


@pytest.mark.parametrize("rows,share", [((3,), 1 / 6), ((2, 3), 2 / 6)])
def test_the_non_finite_share_counts_the_samples_kept(rows, share):
  """6 samples in chunks of 4: the second chunk's rows 2 and 3 are drawn and discarded. A sampler that
  rounds to levels flags its non-finite samples (here the same rows of every chunk); a flagged sample
  that was discarded is no judged one (the chunks' shares weighted by the samples kept: 1/4 and 1/2)."""
  def sample_fn(params, state, key, n):
    y = jnp.zeros((n, 2))
    return y.astype(jnp.int32), {"nonfinite": jnp.isin(jnp.arange(n), jnp.asarray(rows))}

  exp, state = _experiment_drawing(sample_fn, chunk=4)
  samples, labels, info, _ = exp._draw_samples(state, 6)
  assert len(samples) == 6 and labels is None
  assert loop._nonfinite_share(samples, info.pop("nonfinite")) == pytest.approx(share)


@pytest.mark.parametrize("kind,largest,dtype", [("image", 255, np.uint8), ("image", 256, np.int32),
                                                 ("points", 3, np.int32)])
def test_image_levels_are_judged_as_uint8_where_they_fit(kind, largest, dtype):
  """Integer image levels reach the host as uint8, a quarter of int32's memory, where every level of a
  chunk fits; other samples keep their dtype. 6 samples in chunks of 4: the first chunk's levels fit,
  the second's first sample holds the largest level, which no chunk's narrowing may wrap."""
  second_key = jax.random.key_data(jax.random.fold_in(jax.random.fold_in(jax.random.key(0), 4), 1))

  def sample_fn(params, state, key, n):
    levels = jnp.arange(n * 3).reshape(n, 3) % 7
    in_second = jnp.all(jax.random.key_data(key) == second_key)
    return jnp.where(in_second & (jnp.arange(n * 3).reshape(n, 3) == 0), largest, levels)

  exp, state = _experiment_drawing(sample_fn, chunk=4, kind=kind)
  samples, *_ = exp._draw_samples(state, 6)
  expected = np.concatenate([np.arange(12).reshape(4, 3) % 7] * 2)[:6]
  expected[4, 0] = largest
  assert samples.dtype == dtype
  np.testing.assert_array_equal(samples, expected)


@pytest.mark.parametrize("n,chunk", [(200, 16), (1000, 300), (1000, 500), (7, 4)])
def test_a_conditional_models_judged_samples_hold_every_class_as_often(n, chunk):
  """The reference and floor sets hold the data's classes: the samples judged against them are drawn for
  each class equally often (give or take one), whatever the chunk size, and carry their own labels."""
  def sample_fn(params, state, key, n_chunk):  # each sample is its label, so the pairing can be checked
    return jnp.asarray(conditioning.class_runs(n_chunk, 10))[:, None].astype(jnp.float32), {"nfe": 3.0}

  exp, state = _experiment_drawing(sample_fn, chunk=chunk, num_classes=10)
  samples, labels, info, _ = exp._draw_samples(state, n)
  counts = np.bincount(labels, minlength=10)
  assert len(samples) == n and counts.max() - counts.min() <= 1 and info == {"nfe": 3.0}
  np.testing.assert_array_equal(samples[:, 0], labels)
  shown = labels[quality_report.round_robin(labels)]
  assert sorted(shown[:min(n, 10)]) == list(range(min(n, 10)))  # the picture's first samples: every class


def test_points_are_judged_in_raw_space(tmp_path):
  config = load_config("toy2d_gmm", "tiny")
  config.train.progress_bar = False
  summary = tasks.train(config, str(tmp_path))
  assert summary["feature_space"] == "raw" and summary["num_samples"] == config.eval.quality_samples
  assert "inception_score" not in summary and summary["fd_floor"] < summary["fd"]


@pytest.fixture(scope="module")
def random_inception_weights(tmp_path_factory):
  rng = np.random.default_rng(0)
  state = {name: _random_leaf(rng, name, shape) for name, shape in iw.torch_state_dict_shapes().items()}
  path = tmp_path_factory.mktemp("inception") / "inception_v3_fid.npz"
  iw.save_inception_variables(iw.convert_state_dict(state), path)
  return path


def _tiny_fid_config(weights):
  config = load_config("dcgan_cifar10", "tiny")  # the generator that compiles fastest
  config.train.progress_bar = False
  config.eval.feature_space = "inception_v3"
  config.eval.inception_weights = str(weights)
  config.eval.quality_samples = 4
  config.eval.quality_batch_size = 4
  config.eval.quality_reference_max = 8
  config.eval.kid_subsets = 5
  config.eval.kid_subset_size = 4
  config.eval.prdc_k = 2
  return config


def test_paper_config_fid_protocol_on_a_random_inception_network(random_inception_weights, tmp_path):
  config = _tiny_fid_config(random_inception_weights)
  config.eval.inception_score_splits = 2
  paper = load_config("dcgan_cifar10").eval
  assert (paper.feature_space, paper.quality_reference, paper.inception_score_splits) == ("inception_v3",
                                                                                           "train", 10)
  with tfds.testing.mock_data(num_examples=8):
    summary = tasks.train(config, str(tmp_path))
  assert summary["feature_space"] == "inception_v3" and summary["num_samples"] == 4
  assert summary["num_reference"] == 8 and summary["floor_num_samples"] == 4
  assert np.isfinite([summary["fd"], summary["fd_floor"], summary["kid"], summary["inception_score"],
                      summary["inception_score_std"]]).all()


def test_missing_inception_weights_fail_before_training(tmp_path):
  config = _tiny_fid_config(tmp_path / "absent.npz")
  with tfds.testing.mock_data(num_examples=8), pytest.raises(FileNotFoundError, match=iw.CONVERT_COMMAND):
    tasks.train(config, str(tmp_path / "run"))
  # The launch wrote nothing (and removed the workdir it had made).
  assert not (tmp_path / "run").exists()
  config.eval.inception_weights = ""
  with tfds.testing.mock_data(num_examples=8), pytest.raises(FileNotFoundError,
                                                             match="eval.inception_weights"):
    tasks.train(config, str(tmp_path / "run2"))


@pytest.mark.parametrize("field,value,message", [("quality_reference", "valid", "'test' or 'train'"),
                                                  ("quality_samples", 1, "at least 2"),
                                                  ("quality_batch_size", 0, "at least 1"),
                                                  ("inception_score_splits", 201, "at most the data floor's "
                                                                                  "size \\(200"),
                                                  ("fd_resamples", 1, "must be 0 \\(no fd_std\\) or at "
                                                                      "least 2")])
def test_bad_quality_settings_fail_before_training(field, value, message, tmp_path):
  config = load_config("toy2d_gmm", "tiny")
  config.train.progress_bar = False
  setattr(config.eval, field, value)
  with pytest.raises(ValueError, match=message):
    tasks.train(config, str(tmp_path))
  assert not list(tmp_path.glob("checkpoints/*")) and not (tmp_path / "config.json").exists()


def test_finished_chunks_leave_the_devices_while_later_ones_are_drawn(monkeypatch):
  """Every chunk's samples stayed on the devices until the last chunk was drawn (the FID protocol's 50,000
  samples of 64 x 64 images are 2.5 GB of int32 levels); now, when a chunk is dispatched, only the chunks
  in flight and one or two finished ones are."""
  shape = (4, 7, 5)  # the shape of a chunk's samples, which no other array has
  exp, state = _experiment_drawing(lambda p, s, k, n: (jnp.full((n, 7, 5), 2.0), {}), chunk=4)
  on_devices = []
  monkeypatch.setattr(loop.termination, "stop_if_requested",  # called before each chunk's dispatch
                      lambda: on_devices.append(sum(a.shape == shape for a in jax.live_arrays())))
  samples, *_ = exp._draw_samples(state, 4 * 20)
  assert samples.shape == (80, 7, 5) and np.all(samples == 2.0) and len(on_devices) == 20
  assert max(on_devices) <= PROGRAMS_AHEAD + 2, on_devices  # 19 before


def test_sample_info_is_the_mean_over_chunks_and_the_time_is_per_sample_drawn(monkeypatch):
  """10 samples in chunks of 4 (4 + 4 + 2 kept, 12 drawn): a per-chunk nfe is averaged with weights 4, 4
  and 2, and the seconds are shared by all 12 samples the chunks drew."""
  nfe_of = lambda k: jax.random.randint(k, (), 1, 1000)
  exp, state = _experiment_drawing(lambda p, s, k, n: (jnp.zeros((n, 2)), {"nfe": nfe_of(k)}), chunk=4)
  clock = iter([100.0, 112.0])
  monkeypatch.setattr(loop.time, "perf_counter", lambda: next(clock))
  samples, _, info, seconds_per_sample = exp._draw_samples(state, 10)
  key = jax.random.fold_in(exp.base_key, 4)
  nfes = [int(nfe_of(jax.random.fold_in(key, i))) for i in range(3)]
  assert len(set(nfes)) == 3 and samples.shape == (10, 2)
  assert info["nfe"] == pytest.approx((4 * nfes[0] + 4 * nfes[1] + 2 * nfes[2]) / 10)
  assert seconds_per_sample == pytest.approx(12.0 / 12)


def test_inception_space_scales_the_levels_and_scores_with_unbiased_logits(random_inception_weights):
  """Features of levels / (L - 1), and class probabilities from the logits without the classifier's bias,
  as the Inception Score's reference code takes them (the random network's bias is not zero)."""
  levels = np.random.default_rng(1).integers(0, 256, size=(3, 32, 32, 3)).astype(np.uint8)
  space = feature_spaces.inception_space(str(random_inception_weights), 256, batch_size=4)
  feats, probs = space.apply(levels)
  variables = iw.load_inception_variables(random_inception_weights)
  expected, _ = iw.InceptionFeatures(variables, batch_size=4, with_logits=True)(levels / np.float32(255))
  np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-6)
  fc = variables["params"]["fc"]
  assert np.abs(np.asarray(fc["bias"])).max() > 0.1
  logits = np.asarray(expected, np.float64) @ np.asarray(fc["kernel"], np.float64)
  unbiased = np.exp(logits - logits.max(1, keepdims=True))
  np.testing.assert_allclose(probs, unbiased / unbiased.sum(1, keepdims=True), rtol=1e-4, atol=1e-7)
