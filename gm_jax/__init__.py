"""gm_jax: deep generative models in JAX/Flax, each trained by its own objective, with one trainer."""

__version__ = "0.1.0"
