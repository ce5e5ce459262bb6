"""Pivotal Tuning Inversion: a W pivot by the projector, then tuning the generator's weights.

The tuned weights are kept as a per-image delta on top of the frozen generator, never as a
second full model, and rendered with ``torch.func.functional_call``. Facts in shared
METHODS.md (PTI rows and section 4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from sphinx.errors import ConfigError
from sphinx.generators.stylegan2 import Generator
from sphinx.inversion.methods.base import Method, MethodConfig, ParamGroup, Stage, broadcast_rows, w_statistics
from sphinx.inversion.noise import NoiseMaps, noise_regularization
from sphinx.inversion.schedules import jitter_scale
from sphinx.utils.seeding import StepDraws

DELTA_PREFIX = "delta."


@dataclass(frozen=True, kw_only=True)
class PTIConfig(MethodConfig):
    """PTI hyperparameters (the authors' defaults).

    Attributes:
        pivot_steps: projector steps for the W pivot (450).
        pivot_lr: the pivot's effective peak learning rate (0.01), ramped 5% up / 25% down.
        w_avg_samples: z draws for the starting W (600).
        initial_noise_factor, noise_ramp_length: W jitter during the pivot search.
        noise_regularize: noise autocorrelation penalty during the pivot search (1e5).
        pivot_lpips_weight, pivot_mse_weight: the pivot search's loss (LPIPS only, as in PTI).
        steps: at most this many generator-tuning steps (350).
        lr: Adam learning rate of the generator's weights (3e-4).
        lpips_weight, mse_weight: tuning loss, L2 + LPIPS with unit weights.
        lpips_threshold: tuning stops once LPIPS is at most this (0.06).
        locality_regularization: keep the tuned generator close to the original away from the
            pivot (off, as in PTI). Each tuning step draws one w_z = mapping(z) truncated by
            ``locality_truncation`` toward the average, moves ``locality_alpha`` from the pivot
            toward it, and penalizes the L2 and LPIPS distances between the original and the
            tuned generator's images there (noise off), weighted by ``locality_l2_weight`` and
            ``locality_lpips_weight``.
    """

    name: str = "pti"
    pivot_steps: int = 450
    pivot_lr: float = 0.01
    w_avg_samples: int = 600
    initial_noise_factor: float = 0.05
    noise_ramp_length: float = 0.75
    noise_regularize: float = 1e5
    pivot_lpips_weight: float = 1.0
    pivot_mse_weight: float = 0.0
    steps: int = 350
    lr: float = 3e-4
    lpips_weight: float = 1.0
    mse_weight: float = 1.0
    lpips_threshold: float = 0.06
    locality_regularization: bool = False
    locality_alpha: float = 30.0
    locality_truncation: float = 0.5
    locality_l2_weight: float = 0.1
    locality_lpips_weight: float = 0.1

    def check_batch_size(self, batch_size: int) -> None:
        if batch_size != 1:
            raise ConfigError(f"method pti tunes the generator per image; use batch_size=1 (got {batch_size})")

    @property
    def implementation(self) -> type[PivotalTuning]:
        return PivotalTuning


class _Synthesis(nn.Module):
    """Makes ``G.synthesis`` the forward of a module, for ``functional_call``."""

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, ws: torch.Tensor, noise: list[torch.Tensor] | None) -> torch.Tensor:
        return self.generator.synthesis(ws, noise=noise)


def _tuned_synthesis(generator: Generator, delta: dict[str, torch.Tensor], ws: torch.Tensor) -> torch.Tensor:
    base = dict(generator.named_parameters())
    weights = {f"generator.{name}": base[name] + d for name, d in delta.items()}
    return functional_call(_Synthesis(generator), weights, (ws, None), strict=False)


class PivotalTuning(Method):
    """Per-image PTI: one image per batch, since each image tunes its own generator."""

    def __init__(self, generator: Generator, ids, config: PTIConfig, *, seed: int) -> None:
        super().__init__(generator, ids, config, seed=seed)
        mean, self.w_std = w_statistics(generator, config.w_avg_samples)
        self.w = mean[None].clone().requires_grad_()  # [1, style_dim]
        self.noise = NoiseMaps(self.ids, generator.noise_resolutions, seed=seed, device=self.device)
        # Only synthesis weights can change the image rendered from a fixed pivot.
        self.delta = {
            name: torch.zeros_like(p, requires_grad=True)
            for name, p in generator.named_parameters()
            if not name.startswith("style.")
        }
        self.jitter = StepDraws(
            (generator.style_dim,), self.ids, seed, "w_jitter", device=self.device, limit=config.pivot_steps
        )  # [B, style_dim] per pivot step
        self.locality_z = StepDraws(
            (generator.style_dim,),
            self.ids,
            seed,
            "locality",
            device=self.device,
            limit=config.pivot_steps + config.steps,
        )  # [B, style_dim] per tuning step

    def stages(self) -> list[Stage]:
        c = self.config
        pivot = Stage(
            "pivot",
            c.pivot_steps,
            (
                ParamGroup((self.w,), c.pivot_lr, scheduled=True),
                ParamGroup(tuple(self.noise.parameters()), c.pivot_lr, scheduled=True),
            ),
            lpips_weight=c.pivot_lpips_weight,
            mse_weight=c.pivot_mse_weight,
            rampup=0.05,
            rampdown=0.25,
        )
        tune = Stage(
            "tune",
            c.steps,
            (ParamGroup(tuple(self.delta.values()), c.lr, scheduled=False),),
            lpips_weight=c.lpips_weight,
            mse_weight=c.mse_weight,
            lpips_stop=c.lpips_threshold,
        )
        return [pivot, tune]

    def render(self, stage: Stage, step: int, progress: float) -> torch.Tensor:
        g, c = self.generator, self.config
        if stage.name == "pivot":
            scale = jitter_scale(
                progress, w_std=self.w_std, initial_factor=c.initial_noise_factor, ramp_length=c.noise_ramp_length
            )
            return self.synthesis(broadcast_rows(self.w + self.jitter(step) * scale, g.n_latent), noise=self.noise.maps)
        # As in PTI, tuning renders the pivot with the generator's stored noise.
        return _tuned_synthesis(g, self.delta, broadcast_rows(self.w.detach(), g.n_latent))

    def renders_reported_image(self, stage: Stage) -> bool:
        return stage.name == "tune"  # the pivot search renders with jitter and its own noise

    def regularization(self, stage: Stage, step: int, perceptual) -> dict[str, torch.Tensor]:
        if stage.name == "pivot":
            return {"regularization": self.config.noise_regularize * noise_regularization(self.noise.maps)}
        if self.config.locality_regularization:
            return {"regularization": self._locality(step, perceptual)}
        return {}

    def _locality(self, step: int, perceptual) -> torch.Tensor:
        g, c = self.generator, self.config
        z = self.locality_z(step)
        with torch.no_grad():
            center = g.latent_avg if g.latent_avg is not None else w_statistics(g, c.w_avg_samples)[0]
            w_z = g.truncate(g.mapping(z), c.locality_truncation, center)  # [1, style_dim]
            pivot = self.w.detach()
            direction = (w_z - pivot) / (w_z - pivot).norm(dim=1, keepdim=True)
            ws = broadcast_rows(pivot + c.locality_alpha * direction, g.n_latent)
            silent = [torch.zeros_like(n) for n in g.stored_noise()]
            original = g.synthesis(ws, noise=silent)
        base = dict(g.named_parameters())
        weights = {f"generator.{name}": base[name] + d for name, d in self.delta.items()}
        tuned = functional_call(_Synthesis(g), weights, (ws, silent), strict=False)
        penalty = c.locality_l2_weight * (tuned - original).square().mean(dim=(1, 2, 3))
        if perceptual is not None and c.locality_lpips_weight > 0:
            penalty = penalty + c.locality_lpips_weight * perceptual(tuned, original)
        return penalty

    def after_step(self, stage: Stage) -> None:
        if stage.name == "pivot":
            self.noise.renormalize()

    @torch.no_grad()
    def render_final(self) -> torch.Tensor:
        return _tuned_synthesis(self.generator, self.delta, broadcast_rows(self.w, self.generator.n_latent))

    def state(self, index: int) -> dict[str, torch.Tensor]:
        tensors = {"w": self.w[index].detach().clone()}
        tensors.update({DELTA_PREFIX + name: d.detach().clone() for name, d in self.delta.items()})
        return tensors

    @classmethod
    @torch.no_grad()
    def render_state(cls, generator: Generator, tensors: dict[str, torch.Tensor], config: PTIConfig) -> torch.Tensor:
        delta = {name.removeprefix(DELTA_PREFIX): t for name, t in tensors.items() if name.startswith(DELTA_PREFIX)}
        return _tuned_synthesis(generator, delta, broadcast_rows(tensors["w"][None], generator.n_latent))
