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
from sphinx.inversion.methods.base import GeneratorInputs, Method, MethodConfig, ParamGroup, Stage, w_statistics
from sphinx.inversion.noise import NoiseMaps
from sphinx.utils.seeding import StepDraws, per_image_randn

SCHEDULES = ("style_only", "all")
STYLE_INITS = ("random", "w_avg")
CONTENT_INITS = ("random", "constant")
# Last-layer scale of a warm-started head when none is given: the head then starts within a
# small neighbourhood of its anchor, yet every draw still moves its output (measured, README).
WARM_START_SCALE = 0.01
W_AVG_SAMPLES = 10_000  # as the W and W+ baselines start from


@dataclass(frozen=True, kw_only=True)
class SphinxConfig(MethodConfig):
    """SPHInX hyperparameters; defaults are the authors'.

    Attributes:
        name: ``sphinx``, or a variant's name (``sphinx_warm``, ``sphinx_ps``, ``sphinx_ps_pc``).
        steps: Adam steps (5000).
        lr: base learning rate of every head and the noise (1e-3).
        lpips_weight, mse_weight: loss weights (1.5 LPIPS-VGG + 1.0 MSE).
        schedule: ``style_only`` ramps only the style head's lr, as the authors' code does (the
            content head and noise keep a constant lr); ``all`` ramps every group.
        rampup, rampdown: ramp fractions of the StyleGAN2 projector schedule.
        content_head: optimize a content head that replaces the constant 4x4 input.
        optimize_noise: optimize every layer's noise map (raw: no regularizer, no renormalizing);
            when off, the generator's stored noise is used.
        vicinal: draw fresh head inputs every step (the vicinal regularization); off = one fixed
            draw (an ablation).
        bottleneck: width of the style head's encoder output (the authors' 32).
        spread_draws: fresh draws rendered to measure the vicinity spread (0 to skip).
        style_init: ``random`` (the authors': the head's output starts wherever its random
            weights put it) or ``w_avg`` (a trained output bias per W+ row, started at the mean
            W, so the head starts near the generator's average image).
        style_init_scale: multiplies the style head's last-layer initial weights; None means
            1 for ``random`` and 0.01 for ``w_avg``.
        content_init: ``random`` (the authors': the 4x4 input starts wherever the random head
            puts it) or ``constant`` (a trained output bias started at the generator's learned
            constant input, so the head starts at the input the generator was trained with).
        content_init_scale: multiplies the content head's last-layer initial weights; None means
            1 for ``random`` and 0.01 for ``constant``.
    """

    name: str = "sphinx"
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
    style_init: str = "random"
    style_init_scale: float | None = None
    content_init: str = "random"
    content_init_scale: float | None = None

    def check(self) -> None:
        for option, value, choices in (
            ("schedule", self.schedule, SCHEDULES),
            ("style_init", self.style_init, STYLE_INITS),
            ("content_init", self.content_init, CONTENT_INITS),
        ):
            if value not in choices:
                raise ConfigError(f"method.{option} must be one of {', '.join(choices)}, got '{value}'")
        for option in ("style_init_scale", "content_init_scale"):
            value = getattr(self, option)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf")
            ):
                raise ConfigError(f"method.{option} must be non-negative (or null for the default), got {value!r}")
        if self.bottleneck < 1:
            raise ConfigError(f"method.bottleneck must be at least 1, got {self.bottleneck}")
        if self.spread_draws == 1:
            # the spread is a standard deviation over draws: it needs 2 of them, or 0 to skip it
            raise ConfigError(f"method.spread_draws must be 0 (skip) or at least 2, got {self.spread_draws}")

    def check_generator(self, generator: Generator) -> None:
        # the style head's encoder narrows W (style_dim wide) down to the bottleneck
        if self.bottleneck > generator.style_dim:
            raise ConfigError(
                f"method.bottleneck={self.bottleneck} is wider than the W it encodes (the generator's style_dim "
                f"{generator.style_dim}); use at most {generator.style_dim} (the authors use 32)"
            )

    @property
    def implementation(self) -> type[Sphinx]:
        return Sphinx


def _init_scale(scale: float | None, anchor: torch.Tensor | None) -> float:
    if scale is not None:
        return scale
    return 1.0 if anchor is None else WARM_START_SCALE


class Sphinx(Method):
    """Per-image style head (+ optional content head and noise maps) against a frozen G."""

    latent_inputs = True

    def __init__(self, generator: Generator, ids, config: SphinxConfig, *, seed: int) -> None:
        super().__init__(generator, ids, config, seed=seed)
        g = generator
        style_anchor = w_statistics(g, W_AVG_SAMPLES)[0] if config.style_init == "w_avg" else None
        self.style_head = StyleHead.initialize(
            self.ids,
            g.n_latent,
            g.style_dim,
            seed=seed,
            bottleneck=config.bottleneck,
            device=self.device,
            anchor=style_anchor,
            output_scale=_init_scale(config.style_init_scale, style_anchor),
        )
        content_anchor = g.input.input[0] if config.content_init == "constant" else None  # [C4, 4, 4]
        self.content_head = (
            ContentHead.initialize(
                self.ids,
                g.channels[4],
                seed=seed,
                device=self.device,
                anchor=content_anchor,
                output_scale=_init_scale(config.content_init_scale, content_anchor),
            )
            if config.content_head
            else None
        )
        self.noise = (
            NoiseMaps(self.ids, g.noise_resolutions, seed=seed, device=self.device) if config.optimize_noise else None
        )
        # The reported image comes from one fixed draw per image, stored with its state.
        self.final_z = self._draw_z("final")
        self.final_s = self._draw_s("final")
        self.vicinal_z = StepDraws(
            (g.n_latent, g.style_dim), self.ids, seed, "vicinal_z", device=self.device, limit=config.steps
        )  # [B, n_latent, style_dim] per step
        self.vicinal_s = StepDraws(
            CONTENT_INPUT_SHAPE, self.ids, seed, "vicinal_s", device=self.device, limit=config.steps
        )  # [B, 8, 4, 4] per step

    def _draw_z(self, *stream) -> torch.Tensor:
        g = self.generator
        return per_image_randn(
            (g.n_latent, g.style_dim), self.ids, self.seed, "vicinal_z", *stream, device=self.device
        )  # [B, n_latent, style_dim]

    def _draw_s(self, *stream) -> torch.Tensor:
        return per_image_randn(
            CONTENT_INPUT_SHAPE, self.ids, self.seed, "vicinal_s", *stream, device=self.device
        )  # [B, 8, 4, 4]

    def stages(self) -> list[Stage]:
        c = self.config
        groups = [ParamGroup(tuple(self.style_head.parameters()), c.lr, scheduled=True)]
        ramp_all = c.schedule == "all"
        if self.content_head is not None:
            groups.append(ParamGroup(tuple(self.content_head.parameters()), c.lr, scheduled=ramp_all))
        if self.noise is not None:
            groups.append(ParamGroup(tuple(self.noise.parameters()), c.lr, scheduled=ramp_all))
        return [
            Stage(
                "sphinx",
                c.steps,
                tuple(groups),
                lpips_weight=c.lpips_weight,
                mse_weight=c.mse_weight,
                rampup=c.rampup,
                rampdown=c.rampdown,
            )
        ]

    def _inputs(self, z: torch.Tensor, s: torch.Tensor) -> GeneratorInputs:
        content = self.content_head(s) if self.content_head is not None else None
        noise = self.noise.maps if self.noise is not None else None
        return GeneratorInputs(self.style_head(z), noise, content)

    def inputs(self, stage: Stage | None, step: int, progress: float) -> GeneratorInputs:
        if stage is None or not self.config.vicinal:
            return self._inputs(self.final_z, self.final_s)
        return self._inputs(self.vicinal_z(step), self.vicinal_s(step))

    def renders_reported_image(self, stage: Stage) -> bool:
        return not self.config.vicinal  # without fresh draws every step renders the final draw

    @torch.no_grad()
    def render_vicinity(self, draw: int) -> torch.Tensor:
        return self._inputs(self._draw_z("spread", draw), self._draw_s("spread", draw)).render(self.generator)

    def tensors(self) -> dict[str, torch.Tensor]:
        tensors = self.style_head.named_tensors()
        if self.content_head is not None:
            tensors.update(self.content_head.named_tensors())
        if self.noise is not None:
            tensors.update(self.noise.named_tensors())
        tensors["final_z"] = self.final_z
        tensors["final_s"] = self.final_s
        return tensors

    @classmethod
    def state_inputs(
        cls, generator: Generator, tensors: dict[str, torch.Tensor], config: SphinxConfig
    ) -> GeneratorInputs:
        ws = StyleHead.from_states([tensors])(tensors["final_z"][None])
        content = ContentHead.from_states([tensors])(tensors["final_s"][None]) if config.content_head else None
        noise = (
            [tensors[f"noise.{i}"][None] for i in range(generator.num_noise_layers)] if config.optimize_noise else None
        )
        return GeneratorInputs(ws, noise, content)
