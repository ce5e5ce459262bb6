"""Compressed sensing (``degradation=compressed_sensing``): a partial circulant matrix.

As in ILO (and the unused SPHInX helper): flatten an image to ``n = C * H * W`` values, flip
their signs with a Rademacher pattern ``s``, circularly convolve with a Gaussian filter ``h`` and
keep ``m = round(ratio * n)`` of the outputs at random indices:

    A x = P (h * (s . x))          [m] per image

Here ``*`` is the length-n circular convolution, computed with real FFTs. It is exact, because
x, s and h are real, and it uses the ``torch.fft`` module rather than the removed function that
breaks the original code on torch >= 1.8.

Scale: with the default filter entries ``h ~ N(0, 1/n)`` every row of A has expected squared
norm 1. A measurement then has the size of a pixel's root-mean-square value, and an MSE on
measurements is on the scale of an MSE on pixels. ``E[A^T A] = m * filter_std**2 * I``, which
is the factor :meth:`BoundCompressedSensing.preview` divides by.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from sphinx.degradations.base import (
    CheckedOperator,
    DegradationBase,
    ImageShape,
    check_batch,
    check_image_shape,
    check_ratio,
)
from sphinx.errors import ConfigError
from sphinx.utils.seeding import image_generator

STREAM = "compressed_sensing"


def _circular_convolve(rows: torch.Tensor, spectra: torch.Tensor, n: int) -> torch.Tensor:
    """Each row of ``[B, n]`` circularly convolved with the filter whose real FFT is its row of
    ``spectra``, by FFT. On CPU one image at a time: batched FFTs and complex products round
    differently by batch size, and an image's result must not depend on its batch."""
    if rows.device.type != "cpu" or rows.shape[0] == 1:
        return torch.fft.irfft(torch.fft.rfft(rows, n=n) * spectra, n=n)
    return torch.cat(
        [
            _circular_convolve(row.clone(), spectrum.clone(), n)  # clone: fresh, aligned buffers
            for row, spectrum in zip(rows.split(1), spectra.split(1))
        ]
    )


@dataclass(frozen=True, eq=False)
class BoundCompressedSensing(CheckedOperator):
    """The per-image partial circulant operators of one batch.

    Attributes:
        signs: ``[B, n]`` of +-1.
        filter_spectrum: ``[B, n // 2 + 1]`` complex, the real FFT of each image's filter.
        indices: ``[B, m]`` long, sorted, distinct: the kept outputs.
        filter_std: the filters' standard deviation.
    """

    signs: torch.Tensor
    filter_spectrum: torch.Tensor
    indices: torch.Tensor
    filter_std: float
    is_image: ClassVar[bool] = False
    label: ClassVar[str] = "compressed_sensing"

    @property
    def num_measurements(self) -> int:
        return self.indices.shape[1]

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return (self.num_measurements,)

    def measure(self, images: torch.Tensor, step: int | None) -> torch.Tensor:
        n = self.signs.shape[1]
        # FFTs need at least single precision
        work = images.reshape(len(self.ids), n).to(torch.promote_types(images.dtype, torch.float32))
        signed = work * self.signs.to(work.dtype)  # [B, n]
        convolved = _circular_convolve(signed, self.filter_spectrum, n)  # [B, n], real circular convolution
        return convolved.gather(1, self.indices).to(images.dtype)  # [B, m]

    def adjoint(self, measurements: torch.Tensor) -> torch.Tensor:
        """``A^T y``: the transpose applied to measurements.

        Args:
            measurements: ``[B, m]``.

        Returns:
            ``[B, C, H, W]`` (not rescaled, not clamped).
        """
        check_batch(measurements, self.ids, self.observation_shape, "compressed_sensing.adjoint")
        n = self.signs.shape[1]
        work = measurements.to(torch.promote_types(measurements.dtype, torch.float32))
        scattered = work.new_zeros(len(self.ids), n).scatter(1, self.indices, work)  # [B, n]
        # the transpose of a circular convolution is a circular correlation: conj in Fourier
        correlated = _circular_convolve(scattered, self.filter_spectrum.conj(), n)  # [B, n]
        correlated = correlated * self.signs.to(work.dtype)
        return correlated.reshape(len(self.ids), *self.image_shape).to(measurements.dtype)

    def picture(self, observation: torch.Tensor) -> torch.Tensor:
        """``A^T y / (m * filter_std**2)``, an unbiased but noisy back-projection, clamped."""
        scale = self.num_measurements * self.filter_std**2
        return (self.adjoint(observation) / scale).clamp(-1.0, 1.0)  # [B, C, H, W]


@dataclass(frozen=True)
class CompressedSensing(DegradationBase):
    """Random partial circulant measurements.

    Args:
        ratio: measurements per pixel value, in (0, 1]; ``m = round(ratio * C * H * W)``.
        filter_std: standard deviation of the Gaussian filter's entries; ``None`` means
            ``1 / sqrt(C * H * W)``, which gives unit-norm rows (see the module doc).
    """

    ratio: float = 0.1
    filter_std: float | None = None
    name: ClassVar[str] = "compressed_sensing"

    def __post_init__(self) -> None:
        self._check_options()

    def _check_options(self) -> None:
        check_ratio(self.ratio, "compressed_sensing: ratio")
        std = self.filter_std
        if std is not None and (
            isinstance(std, bool) or not isinstance(std, (int, float)) or not math.isfinite(std) or std <= 0
        ):
            raise ConfigError(
                f"compressed_sensing: filter_std must be a positive number or null (1/sqrt(C*H*W)), got {std!r}"
            )

    def num_measurements(self, image_shape: Sequence[int]) -> int:
        """``m = round(ratio * C * H * W)``."""
        return int(round(self.ratio * math.prod(check_image_shape(image_shape))))

    def validate(self, image_shape: Sequence[int]) -> None:
        """Refuse a ratio that leaves no measurement."""
        self._check_options()
        if self.num_measurements(image_shape) < 1:
            raise ConfigError(
                f"compressed_sensing: ratio {self.ratio} gives no measurement for images of shape {tuple(image_shape)}"
            )

    def _bind(
        self, ids: tuple, shape: ImageShape, seed: int, device: torch.device, dtype: torch.dtype
    ) -> BoundCompressedSensing:
        """Draw each image's signs, filter and indices from its own streams (on the CPU).

        The three use separate streams (seed, id, "compressed_sensing", "signs" | "filter" |
        "indices"), so changing ``ratio`` changes only which outputs are kept.
        """
        n = math.prod(shape)
        m = self.num_measurements(shape)
        std = self.filter_std if self.filter_std is not None else 1.0 / math.sqrt(n)
        work_dtype = torch.promote_types(dtype, torch.float32)
        signs, filters, indices = [], [], []
        for image_id in ids:
            g = image_generator(seed, image_id, STREAM, "signs")
            signs.append(torch.randint(0, 2, (n,), generator=g).to(work_dtype) * 2.0 - 1.0)
            g = image_generator(seed, image_id, STREAM, "filter")
            filters.append(torch.randn(n, generator=g, dtype=work_dtype) * std)
            g = image_generator(seed, image_id, STREAM, "indices")
            indices.append(torch.randperm(n, generator=g)[:m].sort().values)
        spectrum = torch.cat([torch.fft.rfft(f[None].to(device), n=n) for f in filters])  # [B, n // 2 + 1]
        return BoundCompressedSensing(
            ids=ids,
            image_shape=shape,
            signs=torch.stack(signs).to(device=device, dtype=dtype),  # [B, n]
            filter_spectrum=spectrum,
            indices=torch.stack(indices).to(device),  # [B, m]
            filter_std=float(std),
        )
