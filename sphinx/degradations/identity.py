"""The identity operator: plain reconstruction (``degradation=none``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from sphinx.degradations.base import CheckedOperator, DegradationBase, ImageShape, check_image_shape


@dataclass(frozen=True, eq=False)
class BoundIdentity(CheckedOperator):
    """``A(x) = x`` for one batch."""

    label: ClassVar[str] = "none"

    def measure(self, images: torch.Tensor, step: int | None) -> torch.Tensor:
        return images


@dataclass(frozen=True)
class NoDegradation(DegradationBase):
    """No degradation: the observation is the clean image."""

    name: ClassVar[str] = "none"

    def validate(self, image_shape: Sequence[int]) -> None:
        """Accept any ``(C, H, W)``."""
        check_image_shape(image_shape)

    def _bind(
        self, ids: tuple, shape: ImageShape, seed: int, device: torch.device, dtype: torch.dtype
    ) -> BoundIdentity:
        """Bind the identity; ``seed``, ``device`` and ``dtype`` are accepted for a uniform call."""
        return BoundIdentity(ids=ids, image_shape=shape)
