"""Class conditioning and classifier-free guidance of the diffusion family: the label reaches the network,
guidance is the stated extrapolation with w = 0 the conditional and "no label" the unconditional model,
label dropout hits its rate, and a class-conditional task uses its labels in training, evaluation and
sampling (a model that ignored them would fail)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax import data as data_lib
from gm_jax.diffusion import guidance
from gm_jax.models.time_mlp import TimeMLP, TimeMLPConfig
from gm_jax.models.unet import UNet, UNetConfig
from gm_jax.tasks import diffusion
from tests.conftest import load_config

NUM_CLASSES = 3


def _random_params(net, x, t, labels):
  """Random weights everywhere (zero-initialized output layers would make a fresh network constant)."""
  rng = np.random.default_rng(0)
  shapes = jax.eval_shape(lambda k: net.init(k, x, t, False, labels), jax.random.key(0))["params"]
  return jax.tree.map(lambda p: jnp.asarray(0.3 * rng.normal(size=p.shape), jnp.float32), shapes)


@pytest.mark.parametrize("net,shape", [
    (TimeMLP(TimeMLPConfig(hidden=(16,), time_dim=8, num_classes=NUM_CLASSES)), (4, 2)),
    (UNet(UNetConfig(channels=8, channel_mults=(1,), num_res_blocks=1, attention_resolutions=(), dropout=0.0,
                     num_groups=4, num_classes=NUM_CLASSES)), (4, 8, 8, 1)),
], ids=["mlp", "unet"])
def test_each_label_and_no_label_give_their_own_prediction(net, shape):
  x, t = jax.random.normal(jax.random.key(1), shape), jnp.full((shape[0],), 0.4)
  labels = jnp.array([0, 1, 2, NUM_CLASSES])  # the last: no label
  params = _random_params(net, x, t, labels)
  assert params["label_embedding"]["embedding"].shape[0] == NUM_CLASSES + 1
  same_x = jnp.broadcast_to(x[:1], x.shape)
  out = np.asarray(net.apply({"params": params}, same_x, t, False, labels)).reshape(len(labels), -1)
  distances = np.abs(out[:, None] - out[None]).sum(-1)
  assert np.all(distances[~np.eye(len(labels), dtype=bool)] > 1e-3)  # one input, four different outputs
  with pytest.raises(ValueError, match="needs labels"):
    net.apply({"params": params}, x, t)


def test_an_unconditional_network_refuses_labels():
  net = TimeMLP(TimeMLPConfig(hidden=(4,), time_dim=4))
  x, t = jnp.ones((2, 2)), jnp.ones(2)
  params = net.init(jax.random.key(0), x, t)["params"]
  assert "label_embedding" not in params
  with pytest.raises(ValueError, match="set model.num_classes"):
    net.apply({"params": params}, x, t, False, jnp.zeros(2, jnp.int32))


def test_guidance_is_the_extrapolation_between_conditional_and_unconditional():
  """A stand-in network whose output is a known function of the label: (1 + w) f(label) - w f(none)."""
  net = lambda x_t, t, y: x_t * (1.0 + y[:, None]) + t[:, None]
  x, t = jax.random.normal(jax.random.key(2), (4, 2)), jnp.linspace(0.1, 0.9, 4)
  labels = jnp.array([0, 2, 1, NUM_CLASSES])
  conditional, unconditional = net(x, t, labels), net(x, t, jnp.full(4, NUM_CLASSES))
  for w in (0.0, 1.0, 3.0):
    out = guidance.guided(net, NUM_CLASSES, w)(x, t, labels)
    np.testing.assert_allclose(out, (1 + w) * conditional - w * unconditional, rtol=1e-6)
    np.testing.assert_allclose(out[3], unconditional[3], rtol=1e-6)  # "no label": unconditional for every w
  np.testing.assert_array_equal(guidance.guided(net, NUM_CLASSES, 0.0)(x, t, labels), conditional)


def test_label_dropout_hits_its_rate_and_keeps_the_other_labels():
  labels = jnp.asarray(np.random.default_rng(4).integers(0, NUM_CLASSES, 100_000))
  out = np.asarray(guidance.drop_labels(jax.random.key(5), labels, 0.1, NUM_CLASSES))
  dropped = out == NUM_CLASSES
  assert abs(dropped.mean() - 0.1) < 4 * np.sqrt(0.1 * 0.9 / len(out))
  np.testing.assert_array_equal(out[~dropped], np.asarray(labels)[~dropped])


def test_a_class_conditional_task_uses_the_labels_in_training_evaluation_and_sampling():
  config = load_config("digits_flow_matching_conditional", "tiny")
  config.eval.update(ode_exact_trace=False)  # (training drops a tenth of the labels; the rest differ)
  dataset = data_lib.load_dataset(config.data)
  task = diffusion.build(config, dataset)
  batch = dataset.test[np.arange(4)]
  batch.update(index=np.arange(4), mask=np.ones(4, np.float32))
  relabelled = {**batch, "label": (batch["label"] + 1) % 10}
  shapes = jax.eval_shape(task.init, jax.random.key(0), batch)
  rng = np.random.default_rng(6)
  params = jax.tree.map(lambda p: jnp.asarray(0.1 * rng.normal(size=p.shape), jnp.float32),
                        shapes["model"]["params"])
  params = {"model": params}
  key = jax.random.key(7)
  loss = jax.jit(lambda b: task.updates[0].loss_fn(params, {}, b, key)[0])
  assert float(loss(batch)) != float(loss(relabelled))
  nll = jax.jit(lambda b: task.eval_fn(params, {}, b, key)["ode_nll_nats"][0])
  assert float(nll(batch)) != float(nll(relabelled))
  labels = task.sample_labels(20)
  np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 2))  # one run per class
  samples, info = jax.jit(lambda k: task.sample_fn(params, {}, k, 20))(key)
  model = diffusion.DiffusionModel(config)
  guided_run = jax.jit(lambda y: diffusion.run_sampler(
      model.denoiser(params["model"], label=y, guidance=config.eval.guidance), key, (20, 8, 8, 1),
      config.eval))
  draw = lambda y: diffusion.to_levels(guided_run(y)[0], 17)
  np.testing.assert_array_equal(samples, draw(jnp.asarray(labels)))
  # Two network evaluations a guided step: the conditional and the unconditional model.
  assert config.eval.guidance > 0 and info["nfe"] == 2 * guided_run(jnp.asarray(labels))[1]
  assert np.any(np.asarray(samples) != np.asarray(draw(jnp.asarray((labels + 1) % 10))))
  assert diffusion.build(load_config("digits_flow_matching", "tiny"), dataset).sample_labels is None


def test_conditioning_settings_are_checked_before_training():
  dataset = data_lib.load_dataset(load_config("toy2d_flow_matching", "tiny").data)
  config = load_config("toy2d_flow_matching", "tiny")
  config.model.num_classes = 3
  with pytest.raises(ValueError, match="conditions on labels, which data '.*' lacks; "
                                       "set model.num_classes=0"):
    diffusion.build(config, dataset)
  config = load_config("toy2d_flow_matching", "tiny")
  config.eval.guidance = 2.0
  config.objective.label_dropout = 0.0  # unread without classes: the missing classes are named
  with pytest.raises(ValueError, match="eval.guidance needs a class-conditional model"):
    diffusion.build(config, dataset)


@pytest.mark.parametrize("name,estimator,settings", [
    ("digits_ddpm", "vlb_nll_nats", {"vlb": True, "ode": False}),  # the bound vmapped over examples
    # adaptive ODE steps: each example solved on its own (the conditional config's full-size setting)
    ("digits_flow_matching_conditional", "ode_nll_nats",
     {"ode_solver": "tsit5", "ode_steps": 0, "ode_rtol": 1e-2, "ode_exact_trace": False, "sampler": "ode",
      "sampler_steps": 0})])
def test_per_example_likelihoods_of_a_class_conditional_model_use_each_examples_label(name, estimator,
                                                                                     settings):
  config = load_config(name, "tiny")
  config.model.num_classes = 10
  config.eval.update(settings)
  dataset = data_lib.load_dataset(config.data)
  task = diffusion.build(config, dataset)
  first = dataset.test[np.arange(4)]
  first.update(index=np.arange(4), mask=np.array([1, 0, 0, 0], np.float32))  # only example 0 counts
  shapes = jax.eval_shape(task.init, jax.random.key(0), first)
  rng = np.random.default_rng(6)
  params = {"model": jax.tree.map(lambda p: jnp.asarray(0.1 * rng.normal(size=p.shape), jnp.float32),
                                  shapes["model"]["params"])}
  nll = jax.jit(lambda b: task.eval_fn(params, {}, b, jax.random.key(7))[estimator][0])
  later = dataset.test[np.arange(4, 7)]
  other_rows = {k: np.concatenate([v[:1], later.get(k, v[1:])]) for k, v in first.items()}
  relabelled = {**first, "label": (first["label"] + 1) % 10}
  # Example 0's value does not depend on the other examples of its batch, and does on its own label.
  assert float(nll(first)) == pytest.approx(float(nll(other_rows)), rel=1e-6)
  assert float(nll(first)) != float(nll(relabelled))
  if config.eval.sampler == "ode":  # the adaptive sampler solves each sample with its own label too
    key = jax.random.key(8)
    model = diffusion.DiffusionModel(config)
    draw = jax.jit(lambda y: diffusion.run_sampler(
        model.denoiser(params["model"], label=y, guidance=config.eval.guidance), key, (4, 8, 8, 1),
        config.eval)[0])
    labels = jnp.asarray(task.sample_labels(4))
    samples, _ = jax.jit(lambda k: task.sample_fn(params, {}, k, 4))(key)
    np.testing.assert_array_equal(samples, diffusion.to_levels(draw(labels), 17))
    # Another label for sample 0 changes sample 0 and leaves the others' solves as they were.
    before, after = np.asarray(draw(labels)), np.asarray(draw(labels.at[0].add(1) % 10))
    assert np.abs(after[0] - before[0]).max() > 1e-3
    np.testing.assert_allclose(after[1:], before[1:], atol=1e-6)
