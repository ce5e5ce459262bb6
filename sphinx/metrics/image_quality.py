"""PSNR and SSIM per image, on [0, 1] images with a fixed data range of 1.

Inputs are sphinx images (NCHW in [-1, 1]); they are mapped to [0, 1] and clamped, so a
reconstruction that overshoots the range is scored as it would be saved.
"""

from __future__ import annotations

import torch


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """Map [-1, 1] images to [0, 1], clamped."""
    return ((images.float() + 1) / 2).clamp(0, 1)


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB, ``[B]``, of ``[B, C, H, W]`` images in [-1, 1]."""
    # imported on first use: torchmetrics pulls in scipy.signal and matplotlib, 2 s of every import of the core
    from torchmetrics.functional.image import peak_signal_noise_ratio

    return peak_signal_noise_ratio(
        to_unit_range(prediction), to_unit_range(target), data_range=1.0, reduction="none", dim=(1, 2, 3)
    )


def ssim(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (Gaussian window 11, sigma 1.5), ``[B]``, of images in [-1, 1]."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(
        to_unit_range(prediction), to_unit_range(target), data_range=1.0, reduction="none"
    )
