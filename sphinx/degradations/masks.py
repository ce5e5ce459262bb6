"""Missing pixels (``degradation=inpaint``): one occluding box, or random missing pixels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from sphinx.degradations.base import CheckedOperator, DegradationBase, ImageShape, check_image_shape, check_ratio
from sphinx.errors import ConfigError
from sphinx.utils.seeding import image_generator

MODES = ("box", "pixels")
# the SPHInX code's random_occlusion: a box 0.4 of the height tall and 0.2 of the width wide
BOX_HEIGHT_FRACTION = 0.4
BOX_WIDTH_FRACTION = 0.2


@dataclass(frozen=True, eq=False)
class BoundInpainting(CheckedOperator):
    """``A(x) = mask * x + (1 - mask) * (-1)`` for one batch.

    Missing pixels are -1 on both sides of the loss, so they add exactly zero to an MSE and
    carry no gradient.

    Attributes:
        mask: ``[B, 1, H, W]``, 1 where a pixel is observed, 0 where it is missing; the same
            for every channel.
    """

    mask: torch.Tensor
    label: ClassVar[str] = "inpaint"

    def measure(self, images: torch.Tensor, step: int | None) -> torch.Tensor:
        mask = self.mask.to(images.dtype)
        return mask * images + (mask - 1.0)  # holes at -1 (black) in the preview too


@dataclass(frozen=True)
class Inpainting(DegradationBase):
    """Missing pixels, filled with -1 in the observation.

    Args:
        mode: ``"box"``: one box of ``round(0.4 H) x round(0.2 W)`` pixels at a uniformly drawn
            position per image (the SPHInX occlusion); ``"pixels"``: each pixel is missing with
            probability ``ratio``, the same for all channels.
        ratio: missing probability in (0, 1]; required by ``"pixels"`` and refused by ``"box"``,
            whose size is fixed.
    """

    mode: str = "box"
    ratio: float | None = None
    name: ClassVar[str] = "inpaint"

    def __post_init__(self) -> None:
        self._check_options()

    def _check_options(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"inpaint: mode must be one of {list(MODES)}, got {self.mode!r}")
        if self.mode == "pixels":
            if self.ratio is None:
                raise ConfigError("inpaint: mode=pixels needs ratio, the missing fraction in (0, 1]")
            check_ratio(self.ratio, "inpaint: ratio")
        elif self.ratio is not None:
            raise ConfigError(
                f"inpaint: ratio is read only by mode=pixels; mode=box has a fixed "
                f"{BOX_HEIGHT_FRACTION} H x {BOX_WIDTH_FRACTION} W box, "
                f"got ratio={self.ratio!r}"
            )

    @staticmethod
    def box_size(image_shape: Sequence[int]) -> tuple[int, int]:
        """``(height, width)`` in pixels of the occluding box for ``(C, H, W)`` images."""
        _, height, width = check_image_shape(image_shape)
        return int(round(BOX_HEIGHT_FRACTION * height)), int(round(BOX_WIDTH_FRACTION * width))

    def validate(self, image_shape: Sequence[int]) -> None:
        """Refuse images too small for a box of at least one pixel."""
        self._check_options()
        check_image_shape(image_shape)
        if self.mode == "box" and min(self.box_size(image_shape)) < 1:
            raise ConfigError(
                f"inpaint: images of shape {tuple(image_shape)} are too small for "
                "an occluding box of at least 1 x 1 pixel"
            )

    def _mask(self, image_id: object, seed: int, height: int, width: int) -> torch.Tensor:
        # drawn on the CPU: the same mask for an image on every machine
        generator = image_generator(seed, image_id, "inpaint", self.mode)
        if self.mode == "pixels":
            missing = torch.rand((1, height, width), generator=generator) < self.ratio
            return (~missing).float()  # [1, H, W]
        box_h, box_w = self.box_size((1, height, width))
        top = int(torch.randint(0, height - box_h + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - box_w + 1, (1,), generator=generator))
        mask = torch.ones(1, height, width)
        mask[:, top : top + box_h, left : left + box_w] = 0.0
        return mask  # [1, H, W]

    def _bind(
        self, ids: tuple, shape: ImageShape, seed: int, device: torch.device, dtype: torch.dtype
    ) -> BoundInpainting:
        """Draw each image's mask from stream (seed, id, "inpaint", mode)."""
        masks = torch.stack([self._mask(i, seed, shape[1], shape[2]) for i in ids])
        return BoundInpainting(ids=ids, image_shape=shape, mask=masks.to(device=device, dtype=dtype))  # [B, 1, H, W]
