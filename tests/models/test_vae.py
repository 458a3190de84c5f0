import jax
import jax.numpy as jnp
import numpy as np

from gm_jax.models.decoders import Decoder
from gm_jax.models.vae import HierarchicalVAE, VAEConfig
from gm_jax.objectives import elbo as elbo_lib
from gm_jax.train.rng import per_example_keys


def _model(latent_dims, hidden, conv=()):
  cfg = VAEConfig(x_shape=(8, 8, 1), latent_dims=latent_dims, hidden=hidden,
                  decoder=Decoder("categorical", num_levels=17), conv_channels=conv)
  model = HierarchicalVAE(cfg)
  x = jnp.asarray(np.random.default_rng(0).integers(0, 17, size=(3, 8, 8, 1)))
  keys = per_example_keys(jax.random.key(0), jnp.arange(3))
  params = model.init(jax.random.key(1), x, keys, 1, method=HierarchicalVAE.log_weights)["params"]
  return model, params, x, keys


def test_three_layer_hierarchy_terms_and_samples():
  model, params, x, keys = _model((8, 6, 4), ((32,), (16,), (16,)))
  terms = model.apply({"params": params}, x, keys, 5, method=HierarchicalVAE.log_weights)
  assert {k: v.shape for k, v in terms.items()} == {
      **{f"log_qz{l}": (5, 3) for l in (1, 2, 3)}, **{f"log_pz{l}": (5, 3) for l in (1, 2, 3)},
      "log_px": (5, 3), "kl_top_analytic": (5, 3)}
  parts = elbo_lib.elbo_terms(terms, "mc")
  np.testing.assert_allclose(parts["elbo"], elbo_lib.log_importance_weights(terms), rtol=1e-5)
  np.testing.assert_allclose(parts["kl"], parts["kl1"] + parts["kl2"] + parts["kl3"], rtol=1e-5)
  samples = model.apply({"params": params}, jax.random.key(2), 10, method=HierarchicalVAE.sample)
  assert samples.shape == (10, 8, 8, 1) and int(samples.min()) >= 0 and int(samples.max()) <= 16


def test_conv_encoder_variant():
  model, params, x, keys = _model((8,), ((32,),), conv=(8, 16))
  assert params["conv"]["Conv_0"]["kernel"].shape == (3, 3, 1, 8)
  terms = model.apply({"params": params}, x, keys, 2, method=HierarchicalVAE.log_weights)
  assert np.all(np.isfinite(np.asarray(terms["log_px"])))


def test_samples_depend_only_on_their_key():
  model, params, x, _ = _model((8,), ((32,),))
  a = model.apply({"params": params}, x, per_example_keys(jax.random.key(0), jnp.arange(3)), 4,
                  method=HierarchicalVAE.log_weights)
  b = model.apply({"params": params}, x[1:], per_example_keys(jax.random.key(0), jnp.arange(1, 3)), 4,
                  method=HierarchicalVAE.log_weights)
  np.testing.assert_allclose(a["log_px"][:, 1:], b["log_px"], rtol=1e-5)
