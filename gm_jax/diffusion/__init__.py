"""Diffusion forward processes, the prediction algebra and the network wrapper shared by losses and
samplers."""
