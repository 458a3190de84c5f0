"""The trainer's config fields with their defaults; every experiment config starts from `base_config`."""

from __future__ import annotations

import importlib.util
import pathlib
from typing import Callable

import ml_collections
from absl import logging

from gm_jax.data import toy2d
from gm_jax.train import sharding


def base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.task = ""

  config.data = ml_collections.ConfigDict()
  config.data.name = ""
  config.data.batch_size = 128
  # Shuffling order; the synthetic data sets are also drawn with it (toy2d's train/test samples, markov_lm's
  # chain and tokens: another seed there is another data set, with another entropy floor).
  config.data.seed = 0
  # Users' own data (docs/own_data.md): data.name = image_folder | npz | text reads data.path.
  config.data.path = ""
  config.data.image_size = 0  # 0: the files' size; > 0: resized to a square (image_folder, TFDS images)
  config.data.num_levels = 0  # 0: from the files; image_folder requantizes to it, npz declares it
  config.data.test_fraction = 0.1  # held out by a fixed seeded split when the data has no test split
  config.data.geometry = {}  # toy2d: the distribution's parameters ({}: its defaults)
  config.data.entropy_samples = toy2d.ENTROPY_SAMPLES  # toy2d: draws of the entropy floor's estimate
  config.data.random_flip = False  # images: mirror each training image left to right with probability 1/2
  config.data.tfds_name = ""  # text: a TFDS text data set instead of data.path
  config.data.level = "char"  # text: char | byte tokens
  config.data.data_dir = ""  # TFDS data directory ("": TFDS's default)
  config.data.crop = 0  # TFDS images: a central square crop of this size before resizing (0: none)
  # text, markov: the test windows' stride (0: consecutive windows, nanoGPT's validation loss, where a
  # token sees context / 2 tokens on average; 1: every token its whole context, context times the cost).
  # Like eval.*, it may change in --mode=eval.
  config.data.eval_stride = 0
  config.data.reflow_pairs = ""  # a .npz of (noise, x) pairs that replaces the training split (reflow)

  config.model = ml_collections.ConfigDict()
  config.model.num_classes = 0  # > 0: class-conditional on the data's `label` (families that support it)

  config.optim = ml_collections.ConfigDict()
  config.optim.name = "adam"
  config.optim.learning_rate = 1e-3
  config.optim.b1 = 0.9
  config.optim.b2 = 0.999
  config.optim.eps = 1e-8
  config.optim.weight_decay = 0.0
  config.optim.schedule = "constant"  # constant | cosine | linear | piecewise
  config.optim.boundaries = ()  # piecewise: the learning rate times scales[i] from step boundaries[i - 1] on
  config.optim.scales = (1.0,)
  config.optim.warmup_steps = 0
  config.optim.decay_steps = 0  # 0: the run's num_steps
  config.optim.end_lr_ratio = 0.0
  config.optim.grad_clip_norm = 0.0  # 0: no clipping
  config.optim.weight_clip = 0.0  # 0: none; > 0: every parameter kept in [-c, c] (the original WGAN)
  config.optim.decay_matrices_only = True  # adamw: decay only weight matrices (kernels, embeddings; by name)
  config.optim.decay = 0.99  # rmsprop
  config.optim.centered = False  # rmsprop
  config.optim.initial_accumulator = 0.1  # adagrad

  config.train = ml_collections.ConfigDict()
  config.train.num_steps = 1000
  config.train.log_every = 100
  config.train.eval_every = 0  # 0: only at the end
  config.train.sample_every = 0  # 0: only at the end
  config.train.num_samples = 64
  config.train.checkpoint_every = 1000  # 0: only at the end
  config.train.keep_checkpoints = 3
  config.train.async_checkpoints = True
  # > 0: evaluation and samples use an exponential moving average of the parameters (not of BatchNorm's
  # statistics: those stay the online network's); 0: no EMA parameters.
  config.train.ema_decay = 0.0
  config.train.progress_bar = True
  # float32 | bfloat16: the dtype of matmuls and convolutions (accumulated in float32); parameters,
  # optimizer state, normalization statistics, softmax, losses and likelihoods stay float32.
  config.train.compute_dtype = "float32"

  # The mesh is (data = devices / fsdp, fsdp); fsdp > 1 shards the train state over groups of fsdp devices
  # as `rules` say (gm_jax.train.sharding; README, "On several devices"). It may change on resume.
  config.mesh = ml_collections.ConfigDict()
  config.mesh.fsdp = 1
  config.mesh.rules = sharding.DEFAULT_RULES

  config.eval = ml_collections.ConfigDict()
  config.eval.batch_size = 1000
  # Sample quality (gm_jax.evaluation.quality_report): the feature space (auto: raw for points, digits for
  # the digits data, none otherwise | none | raw | digits | inception_v3), how many samples are drawn (in
  # compiled chunks of quality_batch_size; chunk i draws from its own key, so the chunk size changes which
  # samples are drawn, not their distribution) and compared with the reference split (at most
  # quality_reference_max examples); a fixed random quality_samples of the other split give the data floor.
  config.eval.feature_space = "auto"
  config.eval.quality_samples = 1000
  config.eval.quality_batch_size = 500
  config.eval.quality_reference = "test"
  config.eval.quality_reference_max = 10000
  config.eval.kid_subsets = 100
  config.eval.kid_subset_size = 1000
  config.eval.prdc_k = 5
  config.eval.inception_score_splits = 1  # the score's mean (and std) over this many parts of each set
  config.eval.fd_resamples = 10  # bootstrap resamples of each set for fd_std, FD's spread (0: none)
  config.eval.inception_weights = ""  # the converted FID Inception weights (.npz) for inception_v3
  # 0: the training's own sample grids and quality samples; another value draws others from the same
  # checkpoint (e.g. --mode=sample --config.eval.sample_seed=1 for fresh samples).
  config.eval.sample_seed = 0
  return config


# The configs a family's experiment configs start from (its default_config), by config.task.
_FAMILY_DEFAULTS: dict[str, list[Callable[[], ml_collections.ConfigDict]]] = {}


def register_family_defaults(task: str, *default_configs: Callable[[], ml_collections.ConfigDict]) -> None:
  """Declares the config(s) that `task`'s experiment configs start from. A field that a stored run's
  config.json lacks (the run predates the field) and that has one of these configs' values is no
  difference, so that such a run can still be resumed and evaluated (gm_jax.train.loop)."""
  _FAMILY_DEFAULTS.setdefault(task, [])
  _FAMILY_DEFAULTS[task] += [f for f in default_configs if f not in _FAMILY_DEFAULTS[task]]


def starting_configs(task: str) -> list[ml_collections.ConfigDict]:
  """base_config and the registered default configs of `task`."""
  return [base_config()] + [make() for make in _FAMILY_DEFAULTS.get(task, [])]


def as_tuples(value):
  """Lists as tuples, nested too: a config rebuilt from config.json holds its tuple fields as lists."""
  return tuple(as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def warn_unread_options(config, default, readers: dict[str, str], context: str) -> list[str]:
  """Names in one warning each "block.name" of `readers` ({field: who reads it}, the fields this config's
  settings leave unread) that `config` sets away from `default`: a value that takes no effect should not
  pass unseen. Returns them as "block.name=value (read by ...)"."""
  unread = [f"{field}={config[block][name]!r} (read {who})" for field, who in readers.items()
            for block, name in [field.split(".")]
            if as_tuples(config[block][name]) != as_tuples(default[block][name])]
  if unread:
    logging.warning("%s ignores %s", context, ", ".join(unread))
  return unread


def use_fid_protocol(config: ml_collections.ConfigDict) -> None:
  """The standard FID protocol: 50,000 samples against the statistics of (up to 50,000) training images in
  the FID Inception network's pool3 space (weights from eval.inception_weights); the test split gives the
  data floor. The Inception Score as papers report it: mean and std over 10 splits."""
  config.eval.feature_space = "inception_v3"
  config.eval.quality_samples = 50_000
  config.eval.quality_reference = "train"
  config.eval.quality_reference_max = 50_000
  config.eval.inception_score_splits = 10  # Salimans et al.'s
  # No bootstrap spread of FID by default: each resample redoes a 2048 x 2048 covariance of 50,000 rows and
  # its square root on the host, twice per evaluation; set eval.fd_resamples to have it.
  config.eval.fd_resamples = 0


TINY_STEPS = 4
# Data read whole in memory at its real size; any other source (TFDS, users' files) is read in batches
# of 4, which tfds.testing.mock_data's few examples can fill.
_IN_MEMORY_DATA = ("toy2d", "digits", "markov", "text")


def tiny_run(config: ml_collections.ConfigDict) -> None:
  """The family-independent part of every `:tiny` size (a smoke test of every code path in seconds):
  TINY_STEPS steps, logged at the middle, evaluated, sampled and checkpointed at the end; schedules that
  fit in them; small batches, toy2d splits and entropy floors; sample quality of 200 samples (KID over 10
  subsets of 100), and none in the Inception space (too slow for CPU smoke tests)."""
  config.train.update(num_steps=TINY_STEPS, log_every=TINY_STEPS // 2, eval_every=0, sample_every=0,
                      checkpoint_every=TINY_STEPS)
  for optim in (config.optim, config.get("optim_d")):
    if optim is not None:
      optim.update(warmup_steps=min(optim.warmup_steps, 1), decay_steps=0)
      if "boundaries" in optim:  # piecewise: one scale per step
        optim.boundaries = tuple(range(1, len(optim.boundaries) + 1))
  config.eval.update(quality_samples=200, kid_subsets=10, kid_subset_size=100)
  if config.eval.feature_space == "inception_v3":
    config.eval.feature_space = "none"
  if config.data.name == "toy2d":  # an entropy floor within about 0.01 nats, in a fiftieth of the time
    config.data.update(num_train=2048, num_test=512, entropy_samples=20_000)
  if config.data.name in _IN_MEMORY_DATA:
    config.data.batch_size = min(config.data.batch_size, 64)
    config.eval.batch_size = min(config.eval.batch_size, 256)
    config.train.num_samples = min(config.train.num_samples, 16)
  else:  # large images: an autoregressive sample of 32x32x3 takes 3,072 network evaluations
    config.data.batch_size = config.eval.batch_size = 4
    config.train.num_samples = min(config.train.num_samples, 2)
  # Quality samples in chunks of the sample grid's size: one compiled sampler serves both.
  config.eval.quality_batch_size = config.train.num_samples


def split_tiny(arg: str | None) -> tuple[str | None, bool]:
  """A config file's argument without its `tiny` item, and whether it had one (`:tiny`, `:grid,tiny`)."""
  items = [item for item in (arg or "").split(",") if item]
  rest = ",".join(item for item in items if item != "tiny")
  return rest or None, "tiny" in items


def load_config_file(path: str | pathlib.Path, arg: str | None = None) -> ml_collections.ConfigDict:
  """`get_config(arg)` of a config file, as `--config=path:arg` would give it (unlocked)."""
  path = pathlib.Path(path)
  example = "e.g. experiments/configs/digits_ddpm.py"
  if path.suffix != ".py":
    raise ValueError(f"{str(path)!r} is no config file: give a Python file that defines get_config(), "
                     f"{example}")
  spec = importlib.util.spec_from_file_location(f"gm_jax_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not callable(getattr(module, "get_config", None)):
    raise ValueError(f"{str(path)!r} defines no get_config(), which a config file must; {example}")
  return module.get_config(arg)
