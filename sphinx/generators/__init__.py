"""The frozen StyleGAN2 generator: network, reference ops and checkpoint loading."""

from sphinx.generators.loading import describe, infer_config, load_generator
from sphinx.generators.stylegan2 import Generator, default_channels, num_latents

__all__ = ["Generator", "default_channels", "describe", "infer_config", "load_generator", "num_latents"]
