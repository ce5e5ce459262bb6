"""Additive Gaussian noise (``degradation=denoise``), as in the SPHInX code's ``add_noise``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from sphinx.degradations.base import CheckedOperator, DegradationBase, ImageShape, check_image_shape
from sphinx.errors import ConfigError
from sphinx.utils.seeding import StepDraws, per_image_randn

STREAM = "denoise"


@dataclass(frozen=True, eq=False)
class BoundGaussianNoise(CheckedOperator):
    """``A(x) = clip(x + sigma * n, -1, 1)`` for one batch.

    The observation's noise is drawn once per image from stream (seed, id, "denoise",
    "observation"), on the CPU, so a target is the same on every machine. Inside the loss the
    generated image gets *fresh* noise each step from stream (seed, id, "denoise", step), drawn
    ahead in blocks of steps (:class:`sphinx.utils.seeding.StepDraws`).
    """

    seed: int
    sigma: float
    device: torch.device
    dtype: torch.dtype
    label: ClassVar[str] = "denoise"
    fresh: StepDraws = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "fresh",
            StepDraws(self.image_shape, self.ids, self.seed, STREAM, device=self.device, dtype=self.dtype),
        )

    def measure(self, images: torch.Tensor, step: int | None) -> torch.Tensor:
        if step is None:
            # drawn again on each call from the same per-image stream: nothing to store
            noise = per_image_randn(self.image_shape, self.ids, self.seed, STREAM, "observation")
        else:
            # fresh noise per step, as the SPHInX authors do: a stochastic forward model
            noise = self.fresh(step)
        noise = noise.to(device=images.device, dtype=images.dtype)  # [B, C, H, W]
        return (images + self.sigma * noise).clamp(-1.0, 1.0)


@dataclass(frozen=True)
class GaussianNoise(DegradationBase):
    """Gaussian measurement noise, clipped to the image range.

    Args:
        sigma: noise standard deviation in [-1, 1] image units (the SPHInX ``--ops_fac``; its
            README uses 0.25).
    """

    sigma: float = 0.25
    name: ClassVar[str] = "denoise"

    def __post_init__(self) -> None:
        self._check_options()

    def _check_options(self) -> None:
        sigma = self.sigma
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma <= 0:
            raise ConfigError(
                f"denoise: sigma must be a positive number, got {sigma!r} (for no noise use degradation=none)"
            )

    def validate(self, image_shape: Sequence[int]) -> None:
        """Accept any ``(C, H, W)``."""
        self._check_options()
        check_image_shape(image_shape)

    def _bind(
        self, ids: tuple, shape: ImageShape, seed: int, device: torch.device, dtype: torch.dtype
    ) -> BoundGaussianNoise:
        """Bind to a batch; see :class:`BoundGaussianNoise` for the noise streams."""
        return BoundGaussianNoise(
            ids=ids, image_shape=shape, seed=seed, sigma=float(self.sigma), device=device, dtype=dtype
        )
