"""Latent-optimization baselines: the StyleGAN2 projector (W), Image2StyleGAN (W+) and
Image2StyleGAN++ (W+, then noise). Facts in shared METHODS.md, sections 3 and 4."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from sphinx.errors import ConfigError
from sphinx.generators.stylegan2 import Generator
from sphinx.inversion.methods.base import (
    GeneratorInputs,
    Method,
    MethodConfig,
    ParamGroup,
    Stage,
    broadcast_rows,
    w_statistics,
)
from sphinx.inversion.noise import NoiseMaps, noise_regularization
from sphinx.inversion.schedules import jitter_scale
from sphinx.utils.seeding import StepDraws


def _saved_noise(generator: Generator, tensors: dict[str, torch.Tensor]) -> list[torch.Tensor] | None:
    if "noise.0" not in tensors:
        return None
    return [tensors[f"noise.{i}"][None] for i in range(generator.num_noise_layers)]


@dataclass(frozen=True, kw_only=True)
class WConfig(MethodConfig):
    """StyleGAN2 projector hyperparameters (NVIDIA's defaults).

    Attributes:
        steps: Adam steps (1000).
        lr: peak learning rate of W and noise (0.1), ramped on all groups.
        lpips_weight, mse_weight: loss weights (LPIPS only).
        rampup, rampdown: ramp fractions (0.05, 0.25).
        w_avg_samples: z draws for the starting W and its spread (10,000).
        initial_noise_factor, noise_ramp_length: W jitter w_std * 0.05 * max(0, 1 - t/0.75)^2.
        noise_regularize: weight of the multi-scale autocorrelation penalty (1e5).
    """

    name: str = "w"
    steps: int = 1000
    lr: float = 0.1
    lpips_weight: float = 1.0
    mse_weight: float = 0.0
    rampup: float = 0.05
    rampdown: float = 0.25
    w_avg_samples: int = 10_000
    initial_noise_factor: float = 0.05
    noise_ramp_length: float = 0.75
    noise_regularize: float = 1e5

    @property
    def implementation(self) -> type[ProjectW]:
        return ProjectW


class ProjectW(Method):
    """One W per image broadcast to every layer, plus regularized, renormalized noise maps."""

    latent_inputs = True

    def __init__(self, generator: Generator, ids, config: WConfig, *, seed: int) -> None:
        super().__init__(generator, ids, config, seed=seed)
        mean, self.w_std = w_statistics(generator, config.w_avg_samples)
        self.w = mean[None].expand(len(self.ids), -1).clone().requires_grad_()  # [B, style_dim]
        self.noise = NoiseMaps(self.ids, generator.noise_resolutions, seed=seed, device=self.device)
        self.jitter = StepDraws(
            (generator.style_dim,), self.ids, seed, "w_jitter", device=self.device, limit=config.steps
        )  # [B, style_dim] per step

    def stages(self) -> list[Stage]:
        c = self.config
        groups = (
            ParamGroup((self.w,), c.lr, scheduled=True),
            ParamGroup(tuple(self.noise.parameters()), c.lr, scheduled=True),
        )
        return [
            Stage(
                "w",
                c.steps,
                groups,
                lpips_weight=c.lpips_weight,
                mse_weight=c.mse_weight,
                rampup=c.rampup,
                rampdown=c.rampdown,
            )
        ]

    def inputs(self, stage: Stage | None, step: int, progress: float) -> GeneratorInputs:
        if stage is None:
            return GeneratorInputs(broadcast_rows(self.w, self.generator.n_latent), self.noise.maps)
        c = self.config
        scale = jitter_scale(
            progress, w_std=self.w_std, initial_factor=c.initial_noise_factor, ramp_length=c.noise_ramp_length
        )
        return GeneratorInputs(
            broadcast_rows(self.w + self.jitter(step) * scale, self.generator.n_latent), self.noise.maps
        )

    def regularization(self, stage: Stage, step: int, perceptual) -> dict[str, torch.Tensor]:
        return {"regularization": self.config.noise_regularize * noise_regularization(self.noise.maps)}

    def after_step(self, stage: Stage) -> None:
        self.noise.renormalize()

    # render_final is the base's: the optimized noise is part of the fit; NVIDIA's script
    # re-renders with the stored noise instead, which we do not copy (see README, "Deviations").

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"w": self.w, **self.noise.named_tensors()}

    @classmethod
    def state_inputs(cls, generator: Generator, tensors: dict[str, torch.Tensor], config: WConfig) -> GeneratorInputs:
        return GeneratorInputs(broadcast_rows(tensors["w"][None], generator.n_latent), _saved_noise(generator, tensors))


@dataclass(frozen=True, kw_only=True)
class WPlusConfig(MethodConfig):
    """Image2StyleGAN hyperparameters.

    Attributes:
        steps: Adam steps (5000).
        lr: constant learning rate (0.01).
        lpips_weight, mse_weight: perceptual + pixel loss, unit weights.
        w_avg_samples: z draws for the mean W that every row starts from.
    """

    name: str = "wplus"
    steps: int = 5000
    lr: float = 0.01
    lpips_weight: float = 1.0
    mse_weight: float = 1.0
    w_avg_samples: int = 10_000

    @property
    def implementation(self) -> type[ProjectWPlus]:
        return ProjectWPlus


class ProjectWPlus(Method):
    """One latent per layer (W+), started at the mean W; the generator's stored noise."""

    latent_inputs = True

    def __init__(self, generator: Generator, ids, config, *, seed: int) -> None:
        super().__init__(generator, ids, config, seed=seed)
        mean, _ = w_statistics(generator, config.w_avg_samples)
        self.w_plus = broadcast_rows(mean[None].expand(len(self.ids), -1), generator.n_latent).clone()
        self.w_plus.requires_grad_()  # [B, n_latent, style_dim]
        self.noise = [n.expand(len(self.ids), -1, -1, -1).clone() for n in generator.stored_noise()]

    def stages(self) -> list[Stage]:
        c = self.config
        return [
            Stage(
                "w+",
                c.steps,
                (ParamGroup((self.w_plus,), c.lr, scheduled=False),),
                lpips_weight=c.lpips_weight,
                mse_weight=c.mse_weight,
            )
        ]

    def inputs(self, stage: Stage | None, step: int, progress: float) -> GeneratorInputs:
        return GeneratorInputs(self.w_plus, self.noise)

    def renders_reported_image(self, stage: Stage) -> bool:
        return True

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"w_plus": self.w_plus}

    @classmethod
    def state_inputs(cls, generator: Generator, tensors: dict[str, torch.Tensor], config) -> GeneratorInputs:
        return GeneratorInputs(tensors["w_plus"][None], _saved_noise(generator, tensors))


@dataclass(frozen=True, kw_only=True)
class WPlusNoiseConfig(MethodConfig):
    """Image2StyleGAN++ hyperparameters: W+ first, then the noise maps, in sequence.

    The paper's exact split and learning rates are unverified (shared METHODS.md); the
    defaults are 5000 W+ steps then 3000 noise steps at the Image2StyleGAN lr.

    Attributes:
        steps: total Adam steps of both stages (8000).
        noise_steps: how many of them optimize the noise, after the W+ stage; None gives the
            noise the default share of ``steps`` (3000 of 8000), so ``steps`` alone can be set
            (filled in when the config is built).
        lr: constant learning rate of both stages (0.01).
        lpips_weight, mse_weight: perceptual + pixel loss, unit weights.
        w_avg_samples: z draws for the mean W that every row starts from.
    """

    name: str = "wplus_noise"
    steps: int = 8000
    noise_steps: int | None = None
    lr: float = 0.01
    lpips_weight: float = 1.0
    mse_weight: float = 1.0
    w_avg_samples: int = 10_000

    NOISE_SHARE: ClassVar[float] = 3000 / 8000  # the default split: 5000 W+ steps, then 3000 noise steps

    def complete(self) -> None:
        if self.noise_steps is None and isinstance(self.steps, int) and not isinstance(self.steps, bool):
            object.__setattr__(self, "noise_steps", round(self.steps * self.NOISE_SHARE))

    def check(self) -> None:
        if not 0 <= self.noise_steps <= self.steps:
            raise ConfigError(f"method.noise_steps must be within [0, steps={self.steps}], got {self.noise_steps}")

    @property
    def implementation(self) -> type[ProjectWPlusNoise]:
        return ProjectWPlusNoise


class ProjectWPlusNoise(ProjectWPlus):
    """W+ with the stored noise held fixed, then the noise maps with W+ held fixed."""

    def __init__(self, generator: Generator, ids, config, *, seed: int) -> None:
        super().__init__(generator, ids, config, seed=seed)
        for noise_map in self.noise:
            noise_map.requires_grad_()

    def stages(self) -> list[Stage]:
        c = self.config
        return [
            Stage(
                "w+",
                c.steps - c.noise_steps,
                (ParamGroup((self.w_plus,), c.lr, scheduled=False),),
                lpips_weight=c.lpips_weight,
                mse_weight=c.mse_weight,
            ),
            Stage(
                "noise",
                c.noise_steps,
                (ParamGroup(tuple(self.noise), c.lr, scheduled=False),),
                lpips_weight=c.lpips_weight,
                mse_weight=c.mse_weight,
            ),
        ]

    def tensors(self) -> dict[str, torch.Tensor]:
        return {**super().tensors(), **{f"noise.{i}": n for i, n in enumerate(self.noise)}}
