"""Differentiable augmentation for GAN training on small data sets.

The idea of DiffAugment (Zhao et al., NeurIPS 2020): apply the same random, differentiable
transforms to real and generated images before the discriminator, in both the discriminator and
the generator steps, so the discriminator cannot memorize the few real images and the generator
still gets gradients through the transform. Three families here: horizontal flip, integer
translation (border pixels repeated, which suits images on a plain background) and color
(brightness, saturation, contrast).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

POLICIES = ("flip", "translation", "color")


class DiffAugment(nn.Module):
    """Random per-sample flip, translation and color changes, differentiable w.r.t. the images.

    Args:
        policy: which families to apply, a subset of ``("flip", "translation", "color")``.
        probability: chance that each family is applied to a given sample.
        translation: largest shift as a fraction of the image side.
        brightness: brightness offsets are drawn from ``[-b, b]`` (added to images in [-1, 1]).
        saturation: saturation factors are drawn from ``[1 - s, 1 + s]``.
        contrast: contrast factors are drawn from ``[1 - c, 1 + c]``.
    """

    def __init__(
        self,
        policy: Sequence[str] = POLICIES,
        *,
        probability: float = 1.0,
        translation: float = 0.125,
        brightness: float = 0.5,
        saturation: float = 1.0,
        contrast: float = 0.5,
    ) -> None:
        super().__init__()
        unknown = sorted(set(policy) - set(POLICIES))
        if unknown:
            raise ValueError(f"unknown augmentations {unknown}; choose from {list(POLICIES)}")
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability}")
        self.policy = tuple(policy)
        self.probability = probability
        self.translation = translation
        self.brightness = brightness
        self.saturation = saturation
        self.contrast = contrast

    def forward(self, images: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a batch.

        Args:
            images: ``[B, 3, H, W]`` in [-1, 1].
            generator: source of the random draws (seed it per step for reproducible training).

        Returns:
            ``[B, 3, H, W]``, same dtype and device.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B, 3, H, W], got {list(images.shape)}")
        for family in self.policy:
            images = getattr(self, f"_{family}")(images, generator)
        return images

    def _draw(self, batch: int, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Uniform [0, 1) draws ``[B]``."""
        return torch.rand(batch, generator=generator, device=images.device, dtype=images.dtype)

    def _applied(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Which samples this family touches, ``[B, 1, 1, 1]`` of 0/1."""
        mask = self._draw(images.shape[0], images, generator) < self.probability
        return mask.to(images.dtype)[:, None, None, None]

    def _flip(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        flip = (
            self._applied(images, generator)
            * (self._draw(images.shape[0], images, generator) < 0.5).to(images.dtype)[:, None, None, None]
        )
        return torch.lerp(images, images.flip(3), flip)

    def _translation(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        batch, _, height, width = images.shape
        applied = self._applied(images, generator).reshape(batch, 1)
        limit = torch.tensor([height, width], device=images.device, dtype=images.dtype) * self.translation
        shift = torch.rand(batch, 2, generator=generator, device=images.device, dtype=images.dtype) * 2 - 1
        shift = torch.round(shift * limit * applied).long()  # [B, 2] (dy, dx)
        rows = torch.arange(height, device=images.device)[None, :] - shift[:, :1]  # [B, H]
        cols = torch.arange(width, device=images.device)[None, :] - shift[:, 1:]  # [B, W]
        rows = rows.clamp(0, height - 1)
        cols = cols.clamp(0, width - 1)
        index = (rows[:, :, None] * width + cols[:, None, :]).reshape(batch, 1, height * width)  # [B, 1, H*W]
        flat = images.reshape(batch, 3, height * width)  # [B, 3, H*W]
        return flat.gather(2, index.expand(-1, 3, -1)).reshape(batch, 3, height, width)

    def _color(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        batch = images.shape[0]

        def factor(spread: float) -> torch.Tensor:
            return (self._draw(batch, images, generator) * 2 - 1)[:, None, None, None] * spread  # [B, 1, 1, 1]

        applied = self._applied(images, generator)
        images = images + factor(self.brightness) * applied
        gray = images.mean(dim=1, keepdim=True)
        images = gray + (images - gray) * (1 + factor(self.saturation) * applied)
        mean = images.mean(dim=[1, 2, 3], keepdim=True)
        return mean + (images - mean) * (1 + factor(self.contrast) * applied)
