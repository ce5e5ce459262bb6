"""Reference StyleGAN2 ops in standard PyTorch: FIR resampling and the biased leaky ReLU.

The published implementations ship CUDA kernels for these, compiled at import. Here they are
plain tensor ops, so every machine (CPU included) can import and run the generator; the math is
the same (the kernels are true convolutions with a symmetric FIR filter).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

LEAKY_RELU_SLOPE = 0.2
LEAKY_RELU_GAIN = math.sqrt(2.0)


def fir_kernel(taps: Sequence[float], *, gain: float = 1.0) -> torch.Tensor:
    """The separable 2-D FIR kernel ``outer(taps, taps)``, normalized to sum ``gain``.

    Args:
        taps: 1-D filter taps, e.g. ``(1, 3, 3, 1)``.
        gain: the kernel's sum; ``factor**2`` for an upsampling filter keeps the mean level.

    Returns:
        Tensor ``[len(taps), len(taps)]``.
    """
    taps_1d = torch.as_tensor(taps, dtype=torch.float32)
    kernel = torch.outer(taps_1d, taps_1d)
    return kernel / kernel.sum() * gain


def upfirdn2d(
    x: torch.Tensor, kernel: torch.Tensor, *, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)
) -> torch.Tensor:
    """Upsample by zero insertion, pad, convolve with a FIR kernel, then downsample.

    Args:
        x: ``[N, C, H, W]``.
        kernel: ``[k, k]`` FIR kernel, applied to every channel alike (true convolution).
        up: integer upsampling factor (zeros inserted after each input pixel).
        down: integer downsampling factor (every ``down``-th output pixel kept).
        pad: (before, after) padding applied on both axes after upsampling; negative crops.

    Returns:
        ``[N, C, (H*up + pad0 + pad1 - k) // down + 1, ...]``.
    """
    batch, channels, height, width = x.shape
    if up > 1:
        x = x.reshape(batch, channels, height, 1, width, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(batch, channels, height * up, width * up)  # [N, C, H*up, W*up]
    pad_before, pad_after = pad
    x = F.pad(x, [max(pad_before, 0), max(pad_after, 0), max(pad_before, 0), max(pad_after, 0)])
    if pad_before < 0 or pad_after < 0:
        end_h = x.shape[2] - max(-pad_after, 0)
        end_w = x.shape[3] - max(-pad_after, 0)
        x = x[:, :, max(-pad_before, 0) : end_h, max(-pad_before, 0) : end_w]
    # conv2d correlates; flipping the kernel makes this a true convolution.
    weight = torch.flip(kernel, [0, 1]).to(dtype=x.dtype, device=x.device)
    weight = weight[None, None].expand(channels, 1, *kernel.shape)  # [C, 1, k, k]
    x = F.conv2d(x, weight, groups=channels)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def biased_leaky_relu(x: torch.Tensor, bias: torch.Tensor | None, *, clamp: float | None = None) -> torch.Tensor:
    """``leaky_relu(x + bias, 0.2) * sqrt(2)``, optionally clamped to ``±clamp``.

    Args:
        x: ``[N, C, ...]`` activations.
        bias: ``[C]`` per-channel bias, or None.
        clamp: symmetric clamp applied after the gain (NVIDIA's ``conv_clamp``), or None.
    """
    if bias is not None:
        x = x + bias.reshape(1, -1, *([1] * (x.ndim - 2))).to(x.dtype)
    x = F.leaky_relu(x, LEAKY_RELU_SLOPE) * LEAKY_RELU_GAIN
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x
