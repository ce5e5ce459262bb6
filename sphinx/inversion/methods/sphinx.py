"""SPHInX: style and content projection heads fed a fresh random draw at every step.

The fresh draw is the vicinal regularization: each image's heads must map a whole
neighbourhood of random inputs to the target, not one point. Facts follow the authors' code
(see shared METHODS.md, section 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sphinx.errors import ConfigError
from sphinx.generators.stylegan2 import Generator
from sphinx.inversion.heads import BOTTLENECK, CONTENT_INPUT_SHAPE, ContentHead, StyleHead
from sphinx.inversion.methods.base import Method, ParamGroup, Stage
from sphinx.inversion.noise import NoiseMaps
from sphinx.seeding import per_image_randn

SCHEDULES = ("style_only", "all")


@dataclass(frozen=True)
class SphinxConfig:
    """SPHInX hyperparameters; defaults are the authors'.

    Attributes:
        steps: Adam steps (5000).
        lr: base learning rate of every head and the noise (1e-3).
        lpips_weight, mse_weight: loss weights (1.5 LPIPS-VGG + 1.0 MSE).
        schedule: ``style_only`` ramps only the style head's lr, as the authors' code does (the
            content head and noise keep a constant lr); ``all`` ramps every group.
        rampup, rampdown: ramp fractions of the StyleGAN2 projector schedule.
        content_head: optimize a content head that replaces the constant 4x4 input.
        optimize_noise: optimize every layer's noise map (raw: no regularizer, no renormalizing);
            when off, the generator's stored noise is used.
        vicinal: draw fresh head inputs every step; off = one fixed draw (an ablation).
        bottleneck: width of the style head's encoder output.
        spread_draws: fresh draws rendered to measure the vicinity spread (0 to skip).
    """

    steps: int = 5000
    lr: float = 1e-3
    lpips_weight: float = 1.5
    mse_weight: float = 1.0
    schedule: str = "style_only"
    rampup: float = 0.05
    rampdown: float = 0.25
    content_head: bool = True
    optimize_noise: bool = True
    vicinal: bool = True
    bottleneck: int = BOTTLENECK
    spread_draws: int = 8


class Sphinx(Method):
    """Per-image style head (+ optional content head and noise maps) against a frozen G."""

    name = "sphinx"

    @classmethod
    def validate(cls, config: SphinxConfig, *, batch_size: int) -> None:
        if config.schedule not in SCHEDULES:
            raise ConfigError(f"method.schedule must be one of {', '.join(SCHEDULES)}, got '{config.schedule}'")
        if config.bottleneck < 1:
            raise ConfigError(f"head.bottleneck must be at least 1, got {config.bottleneck}")
        if config.spread_draws == 1 or config.spread_draws < 0:
            # the spread is a standard deviation over draws: it needs 2 of them, or 0 to skip it
            raise ConfigError(f"method.spread_draws must be 0 (skip) or at least 2, got {config.spread_draws}")

    def __init__(self, generator: Generator, ids, config: SphinxConfig, *, seed: int) -> None:
        super().__init__(generator, ids, config, seed=seed)
        g = generator
        self.style_head = StyleHead.initialize(self.ids, g.n_latent, g.style_dim, seed=seed,
                                               bottleneck=config.bottleneck, device=self.device)
        self.content_head = (ContentHead.initialize(self.ids, g.channels[4], seed=seed, device=self.device)
                             if config.content_head else None)
        self.noise = NoiseMaps(self.ids, g.noise_resolutions, seed=seed, device=self.device) \
            if config.optimize_noise else None
        # The reported image comes from one fixed draw per image, stored with its state.
        self.final_z = self._draw_z("final")
        self.final_s = self._draw_s("final")

    def _draw_z(self, *stream) -> torch.Tensor:
        g = self.generator
        return per_image_randn((g.n_latent, g.style_dim), self.ids, self.seed, "vicinal_z", *stream,
                               device=self.device)  # [B, n_latent, style_dim]

    def _draw_s(self, *stream) -> torch.Tensor:
        return per_image_randn(CONTENT_INPUT_SHAPE, self.ids, self.seed, "vicinal_s", *stream,
                               device=self.device)  # [B, 8, 4, 4]

    def stages(self) -> list[Stage]:
        c = self.config
        groups = [ParamGroup(tuple(self.style_head.parameters()), c.lr, scheduled=True)]
        ramp_all = c.schedule == "all"
        if self.content_head is not None:
            groups.append(ParamGroup(tuple(self.content_head.parameters()), c.lr, scheduled=ramp_all))
        if self.noise is not None:
            groups.append(ParamGroup(tuple(self.noise.parameters()), c.lr, scheduled=ramp_all))
        return [Stage("sphinx", c.steps, tuple(groups), lpips_weight=c.lpips_weight, mse_weight=c.mse_weight,
                      rampup=c.rampup, rampdown=c.rampdown)]

    def _synthesize(self, z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        content = self.content_head(s) if self.content_head is not None else None
        noise = self.noise.maps if self.noise is not None else None
        return self.generator.synthesis(self.style_head(z), noise=noise, input=content)

    def render(self, stage: Stage, step: int, progress: float) -> torch.Tensor:
        if not self.config.vicinal:
            return self._synthesize(self.final_z, self.final_s)
        return self._synthesize(self._draw_z(step), self._draw_s(step))

    @torch.no_grad()
    def render_final(self) -> torch.Tensor:
        return self._synthesize(self.final_z, self.final_s)

    @torch.no_grad()
    def render_vicinity(self, draw: int) -> torch.Tensor:
        return self._synthesize(self._draw_z("spread", draw), self._draw_s("spread", draw))

    def state(self, index: int) -> dict[str, torch.Tensor]:
        tensors = self.style_head.state(index)
        if self.content_head is not None:
            tensors.update(self.content_head.state(index))
        if self.noise is not None:
            tensors.update(self.noise.state(index))
        tensors["final_z"] = self.final_z[index].clone()
        tensors["final_s"] = self.final_s[index].clone()
        return tensors

    @classmethod
    @torch.no_grad()
    def render_state(cls, generator: Generator, tensors: dict[str, torch.Tensor], config: SphinxConfig) -> torch.Tensor:
        ws = StyleHead.from_states([tensors])(tensors["final_z"][None])
        content = ContentHead.from_states([tensors])(tensors["final_s"][None]) if config.content_head else None
        noise = [tensors[f"noise.{i}"][None] for i in range(generator.num_noise_layers)] \
            if config.optimize_noise else None
        return generator.synthesis(ws, noise=noise, input=content)
