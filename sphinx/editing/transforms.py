"""Differentiable image transforms T(x, a) that define an attribute to learn.

Each transform maps NCHW images in [-1, 1] and a factor ``a`` to images in [-1, 1], is
differentiable in both, and gives x back at its identity factor. Geometric ones resample with
bilinear interpolation and fill uncovered pixels with 0 (mid-gray), as the authors'
torchvision ``rotate`` does on [-1, 1] images. No torchvision.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import torch
import torch.nn.functional as F

from sphinx.errors import ConfigError, ImageError


class Transform(ABC):
    """An image transform with one scalar factor.

    Attributes:
        name: registered name (``rotate``, ``brightness``, ...).
        identity: the factor that leaves images unchanged.
        unit: what the factor measures, for labels.
        bounds: the factors that still show an image (beyond them it is mostly fill, black or
            clipped): configured factors outside are refused, and the achieved amount of an edit is
            searched within them.
        geometric: whether the transform moves pixels (and fills what it uncovers) rather than
            changing their values.
    """

    name: ClassVar[str]
    identity: ClassVar[float]
    unit: ClassVar[str]
    bounds: ClassVar[tuple[float, float]]
    geometric: ClassVar[bool] = False

    def __call__(self, images: torch.Tensor, factor: float | torch.Tensor) -> torch.Tensor:
        """Transform a batch.

        Args:
            images: ``[B, 3, H, W]`` in [-1, 1].
            factor: a number, or a tensor ``[]`` or ``[B]`` (one factor per image); gradients flow
                to it when it is a tensor that requires them.

        Returns:
            ``[B, 3, H, W]`` in [-1, 1].
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ImageError(f"{self.name} transforms images [B, 3, H, W], got {list(images.shape)}")
        factor = torch.as_tensor(factor, dtype=images.dtype, device=images.device)
        if factor.ndim > 1 or (factor.ndim == 1 and factor.shape[0] != images.shape[0]):
            raise ConfigError(f"{self.name} factor must be a number or one per image, got shape {list(factor.shape)}")
        return self.apply(images, factor.expand(images.shape[0]))

    @abstractmethod
    def apply(self, images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        """Transform ``[B, 3, H, W]`` images by per-image factors ``[B]``."""

    def label(self, factor: float) -> str:
        """A short label for a frame at ``factor``, e.g. ``22.5°``."""
        return f"{factor:g}{self.unit}"

    def covered(self, images: torch.Tensor, factor: float | torch.Tensor) -> torch.Tensor:
        """Which output pixels show the input rather than fill: ``[B, 1, H, W]`` booleans."""
        if not self.geometric:
            return torch.ones_like(images[:, :1], dtype=torch.bool)
        # bilinear reads that touch the fill are not input; 1 - 1e-3 keeps rounding at exact reads
        return self(torch.ones_like(images[:, :1]).expand(-1, 3, -1, -1), factor)[:, :1] > 1 - 1e-3


def resample(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Bilinear resampling through an affine map of normalized coordinates.

    Args:
        images: ``[B, C, H, W]``.
        theta: ``[B, 2, 3]``: output pixel p (in [-1, 1] coordinates, x right, y down) reads the
            input at ``theta @ (p, 1)``.

    Returns:
        ``[B, C, H, W]``; pixels read from outside the input are 0 (mid-gray).
    """
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _affine(
    a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor
) -> torch.Tensor:
    """``[B, 2, 3]`` matrices ``[[a, b, tx], [c, d, ty]]`` from ``[B]`` entries."""
    return torch.stack([torch.stack([a, b, tx], dim=1), torch.stack([c, d, ty], dim=1)], dim=1)


class Rotate(Transform):
    """Rotation by ``factor`` degrees, counter-clockwise on screen, about the image center."""

    name = "rotate"
    identity = 0.0
    unit = "°"
    bounds = (-180.0, 180.0)
    geometric = True

    def apply(self, images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        radians = factor * (math.pi / 180)
        cos, sin, zero = torch.cos(radians), torch.sin(radians), torch.zeros_like(factor)
        # Output p reads the input at R(-angle) p; with y pointing down that is [[c, -s], [s, c]].
        return resample(images, _affine(cos, -sin, sin, cos, zero, zero))


class Zoom(Transform):
    """Zoom about the center by ``factor`` (2 shows the central half enlarged; < 1 zooms out).

    The authors center-crop by the factor and resize back; resampling through the scaled grid
    is the same map, without torchvision.
    """

    name = "zoom"
    identity = 1.0
    unit = "x"
    bounds = (0.25, 4.0)
    geometric = True

    def apply(self, images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        if not bool((factor > 0).all()):
            raise ConfigError(f"zoom factors must be positive, got {factor.tolist()}")
        scale, zero = 1 / factor, torch.zeros_like(factor)
        return resample(images, _affine(scale, zero, zero, scale, zero, zero))


class Translate(Transform):
    """Horizontal shift by ``factor`` times the image width (positive: to the right)."""

    name = "translate"
    identity = 0.0
    unit = "w"
    bounds = (-0.5, 0.5)
    geometric = True

    def apply(self, images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        one, zero = torch.ones_like(factor), torch.zeros_like(factor)
        # Normalized coordinates span 2 across the image: a shift of f widths is 2f.
        return resample(images, _affine(one, zero, zero, one, -2 * factor, zero))


class Brightness(Transform):
    """Intensity gain: ``factor`` times the [0, 1] intensities, clipped.

    The authors multiply the [-1, 1] values (a contrast change about mid-gray); scaling the
    [0, 1] intensities makes every pixel brighter for a factor above 1 (see README, Deviations).
    """

    name = "brightness"
    identity = 1.0
    unit = "x"
    bounds = (0.1, 4.0)

    def apply(self, images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        # x' = f (x + 1) - 1, written so that f = 1 returns x bit for bit.
        return (images + (factor[:, None, None, None] - 1) * (images + 1)).clamp(-1, 1)


# RGB -> YIQ (NTSC); hue is the angle of the (I, Q) chroma vector.
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.5959, -0.2746, -0.3213], [0.2115, -0.5227, 0.3112]], dtype=torch.float64)


class Hue(Transform):
    """Hue rotation by ``factor`` degrees: the chroma plane of YIQ turns, luma is kept."""

    name = "hue"
    identity = 0.0
    unit = "°"
    bounds = (-180.0, 180.0)

    def apply(self, images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        radians = factor * (math.pi / 180)
        cos, sin = torch.cos(radians), torch.sin(radians)
        one, zero = torch.ones_like(factor), torch.zeros_like(factor)
        rotation = torch.stack(
            [torch.stack([one, zero, zero], 1), torch.stack([zero, cos, -sin], 1), torch.stack([zero, sin, cos], 1)], 1
        )  # [B, 3, 3]
        yiq = _YIQ.to(images)
        # The change (M^-1 (R - I) M) is linear in the [0, 1] intensities (x + 1) / 2; applied to
        # x + 1 it gives the change in [-1, 1], and it is exactly 0 at the identity.
        change = torch.linalg.inv(yiq) @ (rotation - torch.eye(3).to(images)) @ yiq
        return (images + torch.einsum("bij,bjhw->bihw", change, images + 1)).clamp(-1, 1)


TRANSFORMS: dict[str, type[Transform]] = {t.name: t for t in (Rotate, Brightness, Zoom, Translate, Hue)}


def build_transform(name: str) -> Transform:
    """The transform registered under ``name``."""
    if name not in TRANSFORMS:
        raise ConfigError(f"unknown transform '{name}'; choose one of {', '.join(TRANSFORMS)}")
    return TRANSFORMS[name]()


def check_factors(transform: Transform, factors) -> tuple[float, ...]:
    """Factors a_0 < a_1 < ... with a_0 the transform's identity; raises ConfigError otherwise."""
    factors = tuple(float(f) for f in factors)
    if len(factors) < 2:
        raise ConfigError(f"attribute factors need at least 2 values (the identity and one more), got {list(factors)}")
    if factors[0] != transform.identity:
        raise ConfigError(
            f"the first attribute factor must be {transform.name}'s identity {transform.identity:g}, "
            f"got {list(factors)}"
        )
    if any(b <= a for a, b in zip(factors, factors[1:])):
        raise ConfigError(f"attribute factors must be strictly increasing, got {list(factors)}")
    for factor in factors:
        check_factor(transform, factor, "attribute factor")
    return factors


def check_factor(transform: Transform, factor: float, what: str = "factor") -> float:
    """``factor`` as a float, if it lies within the transform's bounds; raises ConfigError otherwise."""
    low, high = transform.bounds
    if not low <= float(factor) <= high:
        raise ConfigError(
            f"{transform.name} {what} {float(factor):g} is out of its range [{low:g}, {high:g}] {transform.unit}".rstrip()
        )
    return float(factor)
