"""Each family's model, objective, sampling and evaluation options: a value that cannot work is a one-line
error when the task is built (before training, and before an --mode=eval or sample run restores anything)."""

import pytest

from gm_jax import data as data_lib
from gm_jax import tasks
from gm_jax.train import config_checks
from tests.conftest import load_config

CASES = [
    ("toy2d_ddpm", {"sampler": "ddim", "sampler_steps": 0}, r"sampler_steps=0 must be >= 1 for the ddim"),
    ("toy2d_ddpm", {"sampler": "ode", "sampler_steps": -1}, r"sampler_steps=-1 must be >= 0 for the ode"),
    # More DDIM steps than the chain has repeated its times (NaN samples).
    ("toy2d_ddpm", {"sampler": "ddim", "sampler_steps": 10**6},
     r"eval.sampler_steps=1000000 exceeds the \d+ steps of the DDPM chain, which DDIM strides over"),
    ("toy2d_ddpm", {"ode_steps": -2}, r"eval.ode_steps=-2 must be >= 0 \(0: adaptive\)"),
    # A typo's 500,000,000 steps ran for 10 minutes (and 4.4 GB) before they were stopped.
    ("toy2d_vpsde", {"sampler": "euler_maruyama", "sampler_steps": 500_000_000},
     r"^eval.sampler_steps=500000000 must be <= 1,048,576: finer steps than 1/2\^20 lose"),
    ("toy2d_vpsde", {"ode_steps": 2**20 + 1}, r"^eval.ode_steps=1048577 must be <= 1,048,576"),
    ("digits_edm", {"edm_rho": 0.0}, r"eval.edm_rho=0.0 must be > 0, eval.edm_churn=0.0 and"),
    ("digits_edm", {"edm_churn": -1.0}, r"eval.edm_churn=-1.0 and eval.edm_s_noise=1.0 >= 0 for the"),
    # The churn's window upside down: the sampler ran without churn.
    ("digits_edm", {"edm_churn": 40.0, "edm_s_tmin": 10.0, "edm_s_tmax": 1.0},
     r"eval.edm_s_tmin=10.0 > eval.edm_s_tmax=1.0 leaves no noise level for eval.edm_churn=40.0"),
    ("toy2d_ddpm", {"ode_steps": 0, "ode_solver": "tsit5", "ode_rtol": 0.0},
     r"eval.ode_rtol=0.0 must be > 0 for the adaptive ODE solve"),
    ("toy2d_ddpm", {"sampler": "ode", "sampler_steps": 0, "ode_solver": "tsit5", "ode_rtol": -1e-4},
     r"eval.ode_rtol=-0.0001 must be > 0"),
    ("toy2d_vpsde", {"vlb_time_samples": 0}, r"eval.vlb_time_samples=0 must be >= 1"),
    ("toy2d_vpsde", {"sampler": "ddpm"}, r"eval.sampler='ddpm' runs a DDPM chain's .*, which .*'vp'"),
    ("toy2d_ddpm", {"ddpm_variance": "medium"}, r"unknown eval.ddpm_variance 'medium'"),
    # It read past the chain's end and took beta_1 ('large') without a word.
    ("toy2d_ddpm", {"ddpm_variance": "small", "process.num_steps": 1},
     r"eval.ddpm_variance='small' needs process.num_steps >= 2 \(its first step's variance is "
     r"beta_tilde_2\)"),
    ("toy2d_ddpm", {"sampler": "ddim", "ddim_eta": 1.5}, r"eval.ddim_eta=1.5 must be in \[0, 1\] \(0: deter"),
    ("toy2d_ddpm", {"ddim_eta": -0.5}, r"eval.ddim_eta=-0.5 must be in \[0, 1\]"),
    ("toy2d_ddpm", {"ode_solver": "rk4"}, r"unknown ODE solver 'rk4'"),
    ("toy2d_ddpm", {"ode_solver": "heun", "ode_steps": 0}, r"heun solver runs with fixed steps; set eval"),
    ("toy2d_flow_matching", {"ode": False, "ode_solver": "euler", "sampler_steps": 0},
     r"euler solver runs with fixed steps; set eval.sampler_steps > 0"),
    ("toy2d_flow_matching", {"sampler_ode_solver": "heun", "sampler_steps": 0},
     r"heun solver runs with fixed steps; set eval.sampler_steps > 0"),
    ("toy2d_flow_matching", {"sampler_ode_solver": "rk4"}, r"unknown ODE solver 'rk4'"),
    ("toy2d_realnvp", {"sample_temperature": 0.0}, r"sample_temperature must be > 0 for flow sampling"),
    ("markov_lm", {"sample_length": 0}, r"eval.sample_length=0 must be in \[1, 16\]"),
    ("markov_lm", {"sample_temperature": -1.0}, r"eval.sample_temperature=-1.0 must be >= 0 \(0: greedy\)"),
    ("markov_lm", {"sample_top_k": 100}, r"eval.sample_top_k=100 must be in \[0, 8\]"),
    ("toy2d_vae", {"iwae_chunk": 0}, r"eval.iwae_samples=.* multiple of eval.iwae_chunk=0 >= 1"),
    ("toy2d_vae", {"iwae_samples": 12, "iwae_chunk": 5}, r"iwae_samples=12 .* multiple of eval.iwae_chunk=5"),
]
MODEL_CASES = [
    ("toy2d_ddpm", "objective", {"loss": "vdm_elbo"}, r"continuous-time ELBO .* 'ddpm_linear' is a DDPM"),
    ("toy2d_ddpm", "objective", {"weighting": "likelihood"}, r"continuous-time ELBO .* is a DDPM chain"),
    ("toy2d_flow_matching", "model", {"prediction": "eps"}, r"model.prediction='eps' gives no velocity"),
    ("digits_edm", "objective", {"antithetic": True}, r"the EDM loss draws log-normal noise levels"),
    ("toy2d_ddpm", "process", {"num_steps": 0}, r"process.num_steps=0 must be >= 1"),
    # At 0 the plan underflowed to zeros: every example drew the same noise row.
    ("toy2d_flow_matching", "objective", {"coupling": "ot", "ot_epsilon": 0.0},
     r"objective.ot_epsilon=0.0 must be > 0 \(the OT plan's entropic regularization"),
    ("toy2d_vpsde", "process", {"beta_min": -1.0}, r"process.beta_min=-1.0 and process.beta_max=20.0 must"),
    ("digits_edm", "process", {"sigma_min": 0.0}, r"process.sigma_min=0.0 and .* 0 < sigma_min < sigma_max"),
    ("digits_edm", "process", {"rho": 0.0}, r"process.rho=0.0 must be > 0"),
    ("digits_edm", "objective", {"edm_p_std": 0.0}, r"objective.edm_p_std=0.0 must be > 0"),
    # Misspelt kinds are named when the task is built, not when the first loss is traced.
    ("toy2d_ddpm", "model", {"prediction": "epsilon"}, r"unknown config.model.prediction 'epsilon'"),
    ("toy2d_ddpm", "objective", {"weighting": "snr"}, r"unknown config.objective.weighting 'snr'"),
    ("toy2d_vdm", "process", {"gamma_min": 5.0}, r"process.gamma_min=5.0 must be below process.gamma_max=5"),
    ("digits_edm", "model", {"sigma_data": 0.0}, r"model.sigma_data=0.0 must be > 0"),
    # The ELBO's reconstruction term at t = 0 divides by sigma(0) = 0 on a path ending in pure noise.
    ("toy2d_flow_matching", "objective", {"loss": "vdm_elbo"}, r"objective.loss='vdm_elbo' needs a finite"),
    # The MLP on images paired one example's time embedding with other examples' pixels.
    ("digits_ddpm", "model", {"net": "mlp"}, r"model.net='mlp' takes vectors; images need model.net='unet'"),
    ("digits_ddpm", "model", {"channel_mults": (1, 2, 2, 2, 2)},
     r"the U-Net's 5 resolutions \(model.channel_mults=\(1, 2, 2, 2, 2\)\) halve the image 4 times, which "
     r"its 8 x 8 pixels"),
    ("digits_flow_matching_conditional", "objective", {"label_dropout": 1.5},
     r"objective.label_dropout=1.5 must be in \[0, 1\)"),
    ("digits_flow_matching_conditional", "objective", {"label_dropout": 0.0},
     r"eval.guidance extrapolates away from the unconditional model, which objective.label_dropout=0"),
    ("toy2d_gan", "objective", {"n_critic": 0}, r"objective.n_critic=0 must be >= 1"),
    ("toy2d_wgan_gp", "objective", {"gp_weight": -10.0}, r"objective.gp_weight=-10.0 >= 0"),
    ("digits_dcgan", "model", {"discriminator_norm": "bogus"}, r"unknown model.discriminator_norm 'bogus'"),
    ("toy2d_gan", "model", {"latent_dim": 0}, r"model.latent_dim=0 must be >= 1"),
    ("toy2d_gan", "model", {"generator_hidden": (0,)}, r"model.generator_hidden=\(0,\) and .* widths >= 1"),
    ("digits_dcgan", "model", {"features": 0}, r"model.features=0 must be >= 1"),
    ("digits_pixelcnn", "model", {"architecture": "diagonal_lstm"},
     r"unknown model.architecture 'diagonal_lstm'; use gated_pixelcnn, row_lstm or diagonal_bilstm"),
    ("digits_pixelcnn", "model", {"num_layers": 0}, r"model.num_layers=0, model.features=6 and .* >= 1"),
    ("digits_pixelcnn", "model", {"kernel": 4}, r"model.kernel=4 must be odd"),
    ("digits_pixelrnn", "model", {"dropout": 1.5}, r"model.dropout=1.5 must be in \[0, 1\)"),
    ("digits_pixelrnn", "model", {"architecture": "row_lstm", "row_kernel": 2}, r"row_kernel=2 must be odd"),
    ("digits_pixelcnn", "model", {"features": 0}, r"model.features=0 and model.head_features=6 must be >= 1"),
    ("digits_pixelrnn", "model", {"hidden": 0}, r"model.hidden=0 must be >= 1 \(the LSTM state's size\)"),
    # At 1 x 1 the mask-A input convolution reads no earlier pixel: independent per-position categoricals.
    ("digits_pixelrnn", "model", {"first_kernel": 1}, r"model.first_kernel=1 must be >= 3 for a PixelRNN"),
    # The PixelCNN's first horizontal convolution, 1 x 1, would leave the current row's pixels unread.
    ("digits_pixelcnn", "model", {"first_kernel": 1}, r"model.first_kernel=1 must be >= 3 for a PixelCNN"),
    ("digits_pixelcnn", "model", {"architecture": "row_lstm"},
     r"model.architecture='row_lstm' is a PixelRNN, whose fields \(hidden, row_kernel\) this PixelCNN"),
    ("digits_pixelrnn", "model", {"architecture": "gated_pixelcnn"},
     r"model.architecture='gated_pixelcnn' needs model.kernel, which this PixelRNN config lacks"),
    ("markov_lm", "model", {"num_heads": 0}, r"^num_heads=0 must be >= 1 \(model.\*, and data.context\)$"),
    ("markov_lm", "model", {"dropout": 1.5}, r"model.dropout=1.5 must be in \[0, 1\)"),
    ("markov_lm", "data", {"context": 0}, r"data.context=0 must be >= 1"),
    ("toy2d_gmm", "data", {"num_train": -5}, r"data.num_train=-5 must be an integer >= 1"),
    ("toy2d_gmm", "data", {"entropy_samples": 1},
     r"data.entropy_samples=1 must be an integer >= 2 \(toy2d draws of the entropy floor's estimate\)"),
    ("toy2d_gmm", "model", {"num_components": 0}, r"model.num_components=0 must be >= 1"),
    ("markov_lm", "data", {"concentration": 0.0}, r"data.concentration=0.0 > 0 \(the Dirichlet prior"),
    ("markov_lm", "data", {"num_tokens": 0}, r"data.num_tokens=0 must be >= 1"),
    ("markov_lm", "model", {"positions": "rotary", "embed_dim": 12, "num_heads": 4},
     r"rotary positions need an even head size; model.embed_dim / model.num_heads = 3"),
    # The scan_steps check named the wrong field first.
    ("toy2d_realnvp", "model", {"architecture": "foo"},
     r"^unknown model.architecture 'foo'; use one of nice, realnvp, glow, nsf, maf, iaf$"),
    ("toy2d_realnvp", "model", {"num_levels": -1}, r"model.num_levels=-1 and model.steps_per_level=.* >= 1"),
    ("digits_realnvp", "model", {"hidden": ()}, r"model.hidden=\(\) gives an image flow's .* no width"),
    ("digits_realnvp", "model", {"conditioner": "mlp"}, r"model.conditioner='mlp': image flows' couplings"),
    ("toy2d_realnvp", "model", {"preprocess": "logit"}, r"model.preprocess='logit' maps dequantized images"),
    ("digits_realnvp", "model", {"logit_alpha": 0.5}, r"model.logit_alpha=0.5 must be in \(0, 0.5\)"),
    # At 0 the logit of a dequantized 0 or 1 (float32 rounding) is infinite: NaN bounds.
    ("digits_realnvp", "model", {"logit_alpha": 0.0}, r"model.logit_alpha=0.0 must be in \(0, 0.5\)"),
    ("toy2d_nsf", "model", {"num_bins": 0}, r"model.num_bins=0 must be >= 1 and model.tail_bound=3.0 > 0"),
    ("toy2d_maf", "model", {"tail_bound": -3.0}, r"model.num_bins=4 must be >= 1 and model.tail_bound=-3.0"),
    ("toy2d_vae", "objective", {"num_samples": 0}, r"^objective.num_samples=0 must be >= 1 and objective"),
    ("toy2d_vae", "objective", {"kl": "MC"}, r"^objective.kl='MC' must be 'analytic' or 'mc'$"),
    ("digits_vae", "model", {"hidden": (32, 32)}, r"model.hidden=\(32, 32\) needs a tuple of hidden sizes"),
    ("digits_vae", "model", {"latent_dims": (0,)}, r"model.latent_dims=\(0,\) needs one size >= 1 per"),
    ("digits_vae", "model", {"latent_dims": (), "hidden": ()}, r"model.latent_dims=\(\) needs one size"),
    ("digits_vae_iaf", "model", {"iaf_steps": -1}, r"model.iaf_steps=-1 must be >= 0"),
    ("toy2d_vae", "model", {"decoder_std": -0.5}, r"model.decoder_std=-0.5 must be >= 0 \(0: learned\)"),
    ("digits_vae", "data", {"binarize": True}, r"data.binarize=True binarizes the images for the bernoulli "
                                               r"decoder, and model.decoder='discretized_logistic' models"),
    ("toy2d_vae", "objective", {"name": "iwae", "beta": 4.0}, r"objective.beta=4.0 weights the ELBO's KL"),
    ("toy2d_vae", "model", {"activation": "elu"}, r"unknown model.activation 'elu'"),
    ("digits_vae_iaf", "model", {"iaf_transform": "rq"}, r"unknown model.iaf_transform 'rq'"),
    ("toy2d_maf", "model", {"transform": "rq"}, r"unknown model.transform 'rq' for maf"),
    ("toy2d_realnvp", "model", {"conditioner_bias_init": "normal"},
     r"^unknown model.conditioner_bias_init 'normal'; use zeros or uniform$"),
    ("toy2d_vae", "model", {"conv_channels": (8,)}, r"model.conv_channels=\(8,\) makes q\(z_1 \| x\) conv"),
    ("digits_realnvp", "objective", {"dequantization": "variational", "dequantizer_hidden": ()},
     r"objective.dequantizer_hidden=\(\) gives the variational dequantizer's conditioners no width"),
    ("toy2d_vae", "data", {"binarize": True}, r"data.binarize=True binarizes images, and data 'ring8' is "
                                              r"'points'; set data.binarize=False"),
    ("toy2d_vae", "objective", {"beta": -1.0}, r"objective.num_samples=1 must be >= 1 and "
                                               r"objective.beta=-1.0 >= 0"),
    ("digits_glow", "model", {"conditioner": "glow", "hidden": (8, 9)},
     r"model.conditioner='glow' has one width .* model.hidden=\(8, 9\) has 2 entries; set model.hidden="),
    ("toy2d_wgan_gp", "objective", {"gp_weight": 0.0}, r"objective.loss='wgan_gp' with objective.gp_weight=0 "
                                                       r"leaves the critic unconstrained"),
]


@pytest.mark.parametrize("name,fields,message", CASES, ids=[f"{n}-{next(iter(f))}" for n, f, _ in CASES])
def test_an_eval_option_that_cannot_work_is_refused(name, fields, message):
  config = load_config(name, "tiny")
  config.update_from_flattened_dict({key if "." in key else f"eval.{key}": value  # a dotted key: a full path
                                     for key, value in fields.items()})
  with pytest.raises(ValueError, match=message):
    tasks.build(config, data_lib.load_dataset(config.data))


def test_raw_features_of_tokens_are_refused():
  """Token ids are categories, and samples need not be as long as the test windows (16 against 17): the
  Frechet distance failed on the shapes after the training."""
  config = load_config("markov_lm", "tiny")
  config.eval.feature_space = "raw"
  with pytest.raises(ValueError, match=r"^eval.feature_space='raw' compares images or points; data .* is "
                                       r"'tokens': set eval.feature_space='none'$"):
    tasks.build_feature_space(config, data_lib.load_dataset(config.data))


@pytest.mark.parametrize("name,block,fields,message", MODEL_CASES,
                         ids=[f"{n}-{next(iter(f))}" for n, _, f, _ in MODEL_CASES])
def test_a_model_or_objective_option_that_cannot_work_is_refused(name, block, fields, message):
  config = load_config(name, "tiny")
  config[block].update(fields)
  with pytest.raises(ValueError, match=message):
    tasks.build(config, data_lib.load_dataset(config.data))


@pytest.mark.parametrize("weight_clip", [0.0, float("inf")])  # the optimizer reads both as no clipping
def test_a_wgan_critic_without_a_finite_weight_clip_is_refused(weight_clip):
  config = load_config("toy2d_gan", "tiny")
  config.objective.loss = "wgan"
  config.optim_d.weight_clip = weight_clip
  with pytest.raises(ValueError, match=r"objective.loss='wgan' needs the critic's weights clipped"):
    tasks.build(config, data_lib.load_dataset(config.data))


UNREAD_CASES = [
    ("toy2d_ddpm", {"eval.ddim_eta": 1.0},
     "this diffusion config (process 'ddpm_linear', loss 'denoising', sampler 'ddpm') ignores "
     "eval.ddim_eta=1.0 (read by the ddim sampler)"),
    ("toy2d_ddpm", {"eval.sampler_steps": 50},
     "this diffusion config (process 'ddpm_linear', loss 'denoising', sampler 'ddpm') ignores "
     "eval.sampler_steps=50 (read by the ddim |"),
    # ddpm_variance is read by the chain's VLB too, so only edm_rho is named.
    ("toy2d_ddpm", {"eval.sampler": "ddim", "eval.sampler_steps": 4, "eval.ddpm_variance": "small",
                    "eval.edm_rho": 3.0},
     "this diffusion config (process 'ddpm_linear', loss 'denoising', sampler 'ddim') ignores "
     "eval.edm_rho=3.0 (read by the edm_heun sampler)"),
    ("toy2d_ddpm", {"eval.sampler": "ddim", "eval.ddim_eta": 1.0, "eval.sampler_steps": 10}, None),  # read
    ("toy2d_ddpm", {"eval.sampler_ode_solver": "dopri5"},
     "this diffusion config (process 'ddpm_linear', loss 'denoising', sampler 'ddpm') ignores "
     "eval.sampler_ode_solver='dopri5' (read by the ode sampler and experiments/reflow_pairs.py)"),
    # Without churn edm_heun is deterministic; the EDM loss and sampler never use the process's time warp.
    ("digits_edm", {"eval.edm_s_noise": 1.007, "process.rho": 3.0, "eval.vlb": False, "eval.ode": False},
     "this diffusion config (process 'karras', loss 'edm', sampler 'edm_heun') ignores "
     "eval.vlb_time_samples=2 (read by a continuous process's eval.vlb), eval.edm_s_noise=1.007 (read by "
     "eval.edm_churn > 0), process.rho=3.0 (read by a loss other than 'edm'"),
    ("digits_edm", {"eval.edm_churn": 40.0, "eval.edm_s_noise": 1.007, "process.rho": 3.0}, None),  # read
    ("toy2d_flow_matching", {"eval.ode": False, "eval.ode_steps": 7, "eval.ode_exact_trace": False},
     "this diffusion config (process 'linear_interpolant', loss 'flow_matching', sampler 'ode') ignores "
     "eval.ode_exact_trace=False (read by eval.ode=True), eval.ode_steps=7 (read by eval.ode=True)"),
    ("toy2d_vdm", {"objective.weighting": "x0", "process.sigma_max": 1.0},
     "this diffusion config (process 'vdm', loss 'vdm_elbo', sampler 'ddim') ignores process.sigma_max=1.0 "
     "(read by process ve | karras), objective.weighting='x0' (read by objective.loss='denoising')"),
    ("toy2d_ddpm", {"objective.label_dropout": 0.5, "objective.ot_epsilon": 5.0},
     "this diffusion config (process 'ddpm_linear', loss 'denoising', sampler 'ddpm') ignores "
     "objective.ot_epsilon=5.0 (read with objective.coupling='ot'), objective.label_dropout=0.5 (read by "
     "class-conditional models"),
    ("toy2d_ddpm", {"model.dropout": 0.5, "model.channels": 3},
     "this diffusion config (process 'ddpm_linear', loss 'denoising', sampler 'ddpm') ignores "
     "model.channels=3 (read by model.net='unet'), model.dropout=0.5 (read by model.net='unet')"),
    ("digits_ddpm", {"model.time_dim": 3},
     "this diffusion config (process 'ddpm_linear', loss 'denoising', sampler 'ddpm') ignores "
     "model.time_dim=3 (read by model.net='mlp')"),
    ("toy2d_realnvp", {"model.transform": "spline", "model.num_bins": 16},
     "model.architecture='realnvp' on points ignores model.transform='spline' (read by maf and iaf), "
     "model.num_bins=16 (read by nsf, and by maf and iaf with model.transform='spline')"),
    ("toy2d_realnvp", {"objective.dequantization": "variational"},
     "model.architecture='realnvp' on points ignores objective.dequantization='variational' (read on "
     "images)"),
    ("digits_nsf", {"model.coupling_scale_init": 5.0, "objective.dequantizer_couplings": 3},
     "model.architecture='nsf' on image ignores model.coupling_scale_init=5.0 (read by realnvp, glow, "
     "and maf and iaf with model.transform='affine'), objective.dequantizer_couplings=3 (read with "
     "objective.dequantization='variational')"),
    ("digits_realnvp", {"model.conditioner_bias_init": "uniform"},
     "model.architecture='realnvp' on image ignores model.conditioner_bias_init='uniform' (read by the MLP "
     "conditioners of nice, realnvp, glow and nsf (vectors))"),
    ("toy2d_realnvp", {"model.scan_blocks": True},
     "model.architecture='realnvp' on points ignores model.scan_blocks=True (read by image flows' conv "
     "conditioners (model.conditioner='conv'))"),
    ("digits_glow", {"model.logit_alpha": 0.2}, "model.architecture='glow' on image ignores "
                                                "model.logit_alpha=0.2 (read with model.preprocess='logit')"),
    ("digits_vae", {"eval.inception_weights": "inception_v3_fid.npz"},
     "the 'digits' feature space ignores eval.inception_weights='inception_v3_fid.npz' (read with "
     "eval.feature_space='inception_v3')"),
    ("toy2d_vae", {"eval.inception_score_splits": 10},
     "the 'raw' feature space ignores eval.inception_score_splits=10 (read in a classifier's"),
    ("digits_pixelrnn", {"model.row_kernel": 5},
     "model.architecture='diagonal_bilstm' ignores model.row_kernel=5 (read by row_lstm)"),
    ("toy2d_gmm", {"optim.b1": 0.5, "optim.name": "rmsprop", "optim.decay_steps": 7},
     "optim (rmsprop, cosine schedule) ignores optim.b1=0.5 (read by adam and adamw)"),
    ("toy2d_gan", {"optim_d.boundaries": (5,), "optim_d.scales": (1.0, 0.1)},
     "optim_d (adam, constant schedule) ignores optim_d.boundaries=(5,) (read by the piecewise schedule), "
     "optim_d.scales=(1.0, 0.1)"),
    ("digits_vae", {"model.iaf_steps": 4, "model.decoder_std": 0.1},
     "model.posterior='gaussian', model.decoder='discretized_logistic' and objective.name='elbo' ignores "
     "model.iaf_steps=4 (read with model.posterior='iaf'), model.decoder_std=0.1 (read by "
     "model.decoder='gaussian')"),
    ("digits_iwae", {"objective.kl": "mc"},
     "model.posterior='gaussian', model.decoder='discretized_logistic' and objective.name='iwae' ignores "
     "objective.kl='mc' (read by objective.name='elbo')"),
    ("digits_autoencoder", {"objective.num_samples": 5},
     "model.posterior='gaussian', model.decoder='discretized_logistic' and objective.name='autoencoder' "
     "ignores objective.num_samples=5 (read by the elbo and iwae objectives)"),
    ("digits_vae_iaf", {"model.iaf_transform": "spline"}, None),  # read
    ("toy2d_gan", {"objective.gp_weight": 1.0},
     "objective.loss='non_saturating' ignores objective.gp_weight=1.0 (read by loss 'wgan_gp')"),
    ("toy2d_maf", {"model.transform": "affine", "model.num_bins": 8, "model.coupling_scale_init": 2.0},
     None),  # read (num_bins back at its default: :tiny's 4 is for the config's spline transform)
    ("digits_vae", {"model.iaf_hidden": (256, 256)},
     "model.posterior='gaussian', model.decoder='discretized_logistic' and objective.name='elbo' ignores "
     "model.iaf_hidden=(256, 256) (read with model.posterior='iaf')"),
    ("digits_dcgan", {"model.generator_hidden": (512, 512)},
     "images ignores model.generator_hidden=(512, 512) (read by the MLPs (points))"),
    ("toy2d_gan", {"model.features": 8, "model.discriminator_norm": "layer"},
     "points ignores model.features=8 (read by the DCGAN (images)), model.discriminator_norm='layer'"),
]


@pytest.mark.parametrize("preconditioning,named", [("edm", True), ("none", False)])
def test_rho_is_named_unread_only_where_the_network_reads_no_times(preconditioning, named, caplog):
  """Under the EDM loss and sampler, EDM's preconditioning hands the network c_noise; without it the
  network reads the times that rho's warp gives the noise levels (the loss moved 55.8 -> 38.8 with rho 3)."""
  config = load_config("digits_edm", "tiny")
  config.eval.update(vlb=False, ode=False)
  config.model.preconditioning = preconditioning
  config.process.rho = 3.0
  with caplog.at_level("WARNING"):
    tasks.build(config, data_lib.load_dataset(config.data))
  assert any("process.rho=3.0" in r.getMessage() for r in caplog.records) == named


@pytest.mark.parametrize("name,fields,warning", UNREAD_CASES, ids=["-".join(f) for _, f, _ in UNREAD_CASES])
def test_an_option_the_config_does_not_read_is_named(name, fields, warning, caplog):
  """A sampler, flow, optimizer or feature-space option changed where nothing reads it (e.g.
  eval.ddim_eta under the ddpm sampler, model.transform on RealNVP) takes no effect: warned when the
  config is checked and the task and its feature space are built, not ignored unseen."""
  config = load_config(name, "tiny")
  for field, value in fields.items():
    block, key = field.split(".")
    config[block][key] = value
  with caplog.at_level("WARNING"):
    config_checks.check_config(config)
    dataset = data_lib.load_dataset(config.data)
    tasks.build(config, dataset)
    tasks.build_feature_space(config, dataset)
  ignored = [r.getMessage() for r in caplog.records if "ignores" in r.getMessage()]
  if warning is None:
    assert ignored == []
  else:
    assert len(ignored) == 1 and ignored[0].startswith(warning), ignored
