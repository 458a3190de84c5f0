"""GAN configs: PacGAN's data, n_critic D updates per G update, weight clipping, and a refused BatchNorm
critic (tests/test_configs.py trains every config)."""

import json
import types

import flax.linen as nn
import jax
import numpy as np
import pytest

from gm_jax import data as data_lib
from gm_jax import tasks
from gm_jax.data.dataset import DataSpec
from gm_jax.models.gan_mlp import MLPDiscriminator
from gm_jax.tasks import gan
from tests.conftest import load_config


def _train(config, workdir):
  config.train.progress_bar = False
  return tasks.train(config, str(workdir))


def test_toy2d_gan_uses_pacgans_data():
  ring, grid = load_config("toy2d_gan", "ring"), load_config("toy2d_gan", "grid")
  assert ring.data.geometry.to_dict() == {"num_modes": 8, "radius": 1.0, "std": 0.01}
  assert grid.data.geometry.to_dict() == {"side": 5, "spacing": 2.0, "std": 0.05}
  assert ring.data.num_train == 100_000 and ring.data.num_test == 2500 and ring.data.batch_size == 100
  with pytest.raises(ValueError, match="use ring or grid"):
    load_config("toy2d_gan", "ring,grid")


def test_toy2d_wgan_gp_runs_five_critic_updates_per_step(tmp_path):
  config = load_config("toy2d_wgan_gp", "tiny")
  _train(config, tmp_path)
  first = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
  assert "discriminator/gradient_penalty" in first and "generator/loss" in first
  assert config.objective.n_critic == 5 and config.optim_d.b1 == 0.0 and config.optim_d.b2 == 0.9
  exp = tasks.experiment(config, tmp_path)
  state, _ = exp.restore_latest()
  exp.checkpointer.close()
  # Adam counts its own updates: five of the critic's for each of the generator's.
  updates = {name: {int(leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(net.opt_state)
                    if "count" in jax.tree_util.keystr(path)}
             for name, net in state.networks.items()}
  steps = config.train.num_steps
  assert updates == {"discriminator": {5 * steps}, "generator": {steps}}


def test_wgan_weight_clipping_through_the_trainer(tmp_path):
  config = load_config("toy2d_gan", "tiny")
  config.objective.loss = "wgan"
  config.objective.n_critic = 5
  config.optim_d.name = "rmsprop"
  config.optim_d.learning_rate = 5e-5
  config.optim_d.weight_clip = 0.01
  _train(config, tmp_path)
  exp = tasks.experiment(config, tmp_path)
  state, _ = exp.restore_latest()
  exp.checkpointer.close()
  leaves = jax.tree.leaves(state.networks["discriminator"].params)
  assert max(float(np.max(np.abs(leaf))) for leaf in leaves) <= 0.01 + 1e-7


@pytest.mark.parametrize("size, refused", [(32, True), (8, False)])
def test_wgan_gp_refuses_a_batchnorm_critic(size, refused):
  # At 8 x 8 the critic has no normalized layer, so discriminator_norm changes nothing and is not refused.
  config = load_config("digits_wgan_gp", "tiny")
  config.model.discriminator_norm = "batch"
  images = types.SimpleNamespace(name="images", spec=DataSpec("image", (size, size, 1), 256))
  if refused:
    with pytest.raises(ValueError, match="must not use BatchNorm"):
      gan.make_networks(config, images)
  else:
    _, critic = gan.make_networks(config, images)
    assert critic.norm == "batch"


def test_the_dcgan_refuses_non_square_images_in_one_line():
  """An 8 x 16 npz trained to the critic's last reshape and stopped there with a traceback."""
  config = load_config("digits_dcgan", "tiny")
  images = types.SimpleNamespace(name="npz", spec=DataSpec("image", (8, 16, 1), 256))
  with pytest.raises(ValueError, match=r"^the DCGAN draws square images and the data's are 8 x 16; resize"):
    gan.make_networks(config, images)


# What each network minimizes, in closed form of the critic's scores on real data and on fakes.
CLOSED_FORMS = {
    "minimax": (lambda r, f: np.logaddexp(0, -r) + np.logaddexp(0, f), lambda f: -np.logaddexp(0, f)),
    "non_saturating": (lambda r, f: np.logaddexp(0, -r) + np.logaddexp(0, f), lambda f: np.logaddexp(0, -f)),
    "wgan": (lambda r, f: f - r, lambda f: -f),
    "wgan_gp": (lambda r, f: f - r, lambda f: -f),
    "hinge": (lambda r, f: np.maximum(0, 1 - r) + np.maximum(0, 1 + f), lambda f: -f),
}


@pytest.mark.parametrize("loss", sorted(CLOSED_FORMS))
def test_each_networks_loss_is_its_closed_form_of_the_critics_scores(loss):
  """The task's two losses against the closed forms of the critic's scores, read off its calls and told
  apart by their inputs (swapping real and fake, or the penalty's sign, passed every test before)."""
  config = load_config("toy2d_gan", "tiny")
  config.objective.update(loss=loss, n_critic=1, gp_weight=10.0)
  config.optim_d.weight_clip = 0.01 if loss == "wgan" else 0.0
  dataset = data_lib.load_dataset(config.data)
  task = tasks.build(config, dataset)
  batch = dataset.train[np.arange(16)]
  batch.update(index=np.arange(16), mask=np.ones(16, np.float32))
  variables = task.init(jax.random.key(0), batch)
  params = {name: v["params"] for name, v in variables.items()}
  state = {name: {k: c for k, c in v.items() if k != "params"} for name, v in variables.items()}
  d_update, g_update = task.updates

  def scores(loss_fn):
    """loss_fn's value and metrics, and the critic's (input, scores) of each call in training mode."""
    calls = []

    def record(next_fun, args, kwargs, context):
      out = next_fun(*args, **kwargs)
      traced = isinstance(out, jax.core.Tracer)  # the penalty's calls, inside its gradient
      if isinstance(context.module, MLPDiscriminator) and context.method_name == "__call__" and not traced:
        calls.append((np.asarray(args[0]), np.asarray(out, np.float64)))
      return out

    with nn.intercept_methods(record):
      value, (metrics, _) = loss_fn(params, state, batch, jax.random.key(1))
    return float(value), metrics, calls

  d_loss, metrics, calls = scores(d_update.loss_fn)
  real = [s for x, s in calls if x.shape == batch["x"].shape and np.array_equal(x, batch["x"])]
  fake = [s for x, s in calls if x.shape == batch["x"].shape and not np.array_equal(x, batch["x"])]
  expected = np.mean(CLOSED_FORMS[loss][0](real[0], fake[0]))
  if loss == "wgan_gp":
    gp = float(metrics["gradient_penalty"][0] / metrics["gradient_penalty"][1])
    assert gp > 0
    expected += 10.0 * gp
  assert d_loss == pytest.approx(expected, rel=1e-5, abs=1e-6)
  g_loss, _, calls = scores(g_update.loss_fn)
  assert g_loss == pytest.approx(np.mean(CLOSED_FORMS[loss][1](calls[0][1])), rel=1e-5, abs=1e-6)
