"""Loss of colour (``degradation=colorize``): only the luminance is observed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from sphinx.degradations.base import CheckedOperator, DegradationBase, ImageShape, check_image_shape
from sphinx.errors import ConfigError

# ITU-R BT.601 luma weights for R, G, B; they sum to 1, so a gray pixel keeps its value
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def luminance(images: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of RGB images.

    Args:
        images: ``[B, 3, H, W]`` in [-1, 1].

    Returns:
        ``[B, 1, H, W]`` in [-1, 1].
    """
    weights = torch.tensor(LUMA_WEIGHTS, device=images.device, dtype=images.dtype)
    return (images * weights.view(1, 3, 1, 1)).sum(dim=1, keepdim=True)


@dataclass(frozen=True, eq=False)
class BoundColorization(CheckedOperator):
    """``A(x) = Y(x)`` repeated on 3 channels, so LPIPS can compare observations."""

    label: ClassVar[str] = "colorize"

    def measure(self, images: torch.Tensor, step: int | None) -> torch.Tensor:
        return luminance(images).repeat(1, 3, 1, 1)  # [B, 3, H, W]


@dataclass(frozen=True)
class Colorization(DegradationBase):
    """Grayscale observation of an RGB image (BT.601 luma); no options."""

    name: ClassVar[str] = "colorize"

    def validate(self, image_shape: Sequence[int]) -> None:
        """Refuse images that are not 3-channel RGB."""
        channels = check_image_shape(image_shape)[0]
        if channels != 3:
            raise ConfigError(f"colorize: needs 3-channel RGB images, got {channels} channels")

    def _bind(
        self, ids: tuple, shape: ImageShape, seed: int, device: torch.device, dtype: torch.dtype
    ) -> BoundColorization:
        """Bind to a batch; nothing is random here, ``seed`` is accepted for a uniform call."""
        return BoundColorization(ids=ids, image_shape=shape)
