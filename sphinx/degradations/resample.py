"""Downsampling (``degradation=superres``): the PULSE/ILO bicubic kernel, or area averaging.

The bicubic operator is separable. Each output pixel ``k`` sits at the centre of its block of
``factor`` input pixels, ``c = k * factor + (factor - 1) / 2``, and weighs input pixel ``j`` by
``keys_cubic((j - c) / factor)``, normalised to sum 1, i.e. the Keys cubic (a = -0.5) stretched
by ``factor``, which reaches 2 * factor pixels to each side.

- Even factors: the offsets ``j - c`` are half-integers, giving the 4 * factor taps of PULSE and
  ILO (tap i at ``(i - 2 factor + 0.5) / factor``).
- Odd factors: the offsets are integers. Keeping 4 * factor taps, as PULSE does, would put the
  kernel half a pixel off the block centre, so we use the centred ``4 * factor - 1`` taps. The
  two taps this leaves out are at ``+-2``, where Keys is exactly 0. With factor 1 the kernel is
  ``[0, 1, 0]`` and the operator is the identity.

Padding: a stride-``factor`` convolution with ``T`` taps maps ``H + 2p`` rows to
``(H + 2p - T) / factor + 1`` rows. That is exactly ``H / factor`` when
``2p = T - factor``, i.e. ``p = 3 factor / 2`` (even) or ``(3 factor - 1) / 2`` (odd). It is
the same on both sides, so the first window is centred on the first block. Padding reflects
the image, as in PULSE, and so needs ``p < H``: we ask for at least 2 output pixels per side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from sphinx.degradations.base import CheckedOperator, DegradationBase, ImageShape, check_image_shape
from sphinx.errors import ConfigError

KERNELS = ("bicubic", "area")
KEYS_A = -0.5  # the Keys (1981) cubic used by PULSE and ILO (and by MATLAB's imresize)


def keys_cubic(x: torch.Tensor, a: float = KEYS_A) -> torch.Tensor:
    """The Keys cubic convolution kernel.

    Args:
        x: positions, any shape, in units of the sample spacing.
        a: the free parameter; -0.5 makes the interpolant third-order accurate.

    Returns:
        Kernel values, same shape as ``x``; 1 at 0, 0 at the other integers, 0 for ``|x| >= 2``.
    """
    t = x.abs()
    inner = (a + 2.0) * t**3 - (a + 3.0) * t**2 + 1.0
    outer = a * t**3 - 5.0 * a * t**2 + 8.0 * a * t - 4.0 * a
    return torch.where(t <= 1.0, inner, torch.where(t < 2.0, outer, torch.zeros_like(t)))


def bicubic_kernel(factor: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The 1-D downsampling kernel for ``factor``, normalised to sum 1 (see the module doc).

    Returns:
        ``[4 * factor]`` for even factors, ``[4 * factor - 1]`` for odd ones; symmetric.
    """
    taps = 4 * factor if factor % 2 == 0 else 4 * factor - 1
    offsets = torch.arange(taps, dtype=torch.float64) - (taps - 1) / 2.0  # j - c, symmetric
    weights = keys_cubic(offsets / factor)
    return (weights / weights.sum()).to(dtype)


def bicubic_downsample(images: torch.Tensor, kernel: torch.Tensor, factor: int) -> torch.Tensor:
    """Separable strided convolution with reflect padding.

    Args:
        images: ``[B, C, H, W]`` with H and W multiples of ``factor``, H/factor and W/factor >= 2.
        kernel: ``[T]`` from :func:`bicubic_kernel`.
        factor: the stride.

    Returns:
        ``[B, C, H / factor, W / factor]``; may overshoot [-1, 1] slightly (negative lobes).
    """
    channels = images.shape[1]
    pad = (kernel.numel() - factor) // 2
    kernel = kernel.to(device=images.device, dtype=images.dtype)
    rows = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)  # [C, 1, T, 1]
    cols = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)  # [C, 1, 1, T]
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    out = F.conv2d(padded, rows, stride=(factor, 1), groups=channels)  # [B, C, H/f, W + 2p]
    return F.conv2d(out, cols, stride=(1, factor), groups=channels)  # [B, C, H/f, W/f]


@dataclass(frozen=True, eq=False)
class BoundSuperResolution(CheckedOperator):
    """``A(x) = downsample(x)`` for one batch; deterministic, the same for every image."""

    factor: int
    kernel: torch.Tensor | None  # [T] for "bicubic"; None for "area"
    label: ClassVar[str] = "superres"

    @property
    def observation_shape(self) -> tuple[int, ...]:
        channels, height, width = self.image_shape
        return channels, height // self.factor, width // self.factor

    def measure(self, images: torch.Tensor, step: int | None) -> torch.Tensor:
        if self.kernel is None:
            return F.avg_pool2d(images, self.factor)
        return bicubic_downsample(images, self.kernel, self.factor)

    def picture(self, observation: torch.Tensor) -> torch.Tensor:
        """Nearest-neighbour upsampling back to ``(H, W)``: shows the pixels actually observed."""
        big = observation.repeat_interleave(self.factor, dim=2)
        return big.repeat_interleave(self.factor, dim=3).clamp(-1.0, 1.0)  # [B, C, H, W]


@dataclass(frozen=True)
class SuperResolution(DegradationBase):
    """Downsampling by an integer factor.

    Args:
        factor: integer >= 1 dividing H and W; the observation is ``[B, C, H/f, W/f]``.
        kernel: ``"bicubic"`` (the PULSE/ILO kernel, see the module doc) or ``"area"``
            (the mean of each ``f x f`` block).
    """

    factor: int = 4
    kernel: str = "bicubic"
    name: ClassVar[str] = "superres"

    def __post_init__(self) -> None:
        self._check_options()

    def _check_options(self) -> None:
        if isinstance(self.factor, bool) or not isinstance(self.factor, int) or self.factor < 1:
            raise ConfigError(f"superres: factor must be an integer >= 1, got {self.factor!r}")
        if self.kernel not in KERNELS:
            raise ConfigError(f"superres: kernel must be one of {list(KERNELS)}, got {self.kernel!r}")

    def validate(self, image_shape: Sequence[int]) -> None:
        """Refuse a factor that does not divide H and W, or (bicubic) leaves fewer than 2 pixels."""
        self._check_options()
        _, height, width = check_image_shape(image_shape)
        if height % self.factor or width % self.factor:
            raise ConfigError(
                f"superres: factor {self.factor} must divide the image height and width, got {height} x {width}"
            )
        if self.kernel == "bicubic" and min(height, width) // self.factor < 2:
            raise ConfigError(
                f"superres: bicubic with factor {self.factor} needs at least "
                f"{2 * self.factor} pixels per side for its reflect padding, "
                f"got {height} x {width}"
            )

    def _bind(
        self, ids: tuple, shape: ImageShape, seed: int, device: torch.device, dtype: torch.dtype
    ) -> BoundSuperResolution:
        """Bind to a batch; nothing is random here, ``seed`` is accepted for a uniform call."""
        kernel = None
        if self.kernel == "bicubic":
            kernel = bicubic_kernel(self.factor).to(device=device, dtype=dtype)
        return BoundSuperResolution(ids=ids, image_shape=shape, factor=self.factor, kernel=kernel)
