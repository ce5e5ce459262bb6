"""The StyleGAN2 residual discriminator in plain PyTorch.

Equalized learning rate on every layer, FIR low-pass before each stride-2 convolution (through
the reference :func:`~sphinx.generators.ops.upfirdn2d`), residual blocks scaled by 1/sqrt(2),
and a minibatch standard-deviation feature before the 4x4 head.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sphinx.generators.ops import biased_leaky_relu, fir_kernel, upfirdn2d
from sphinx.generators.stylegan2 import DEFAULT_BLUR_TAPS, EqualLinear


class EqualConv2d(nn.Module):
    """Convolution with equalized learning rate: N(0, 1) weights scaled by 1/sqrt(fan_in) at run time."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class ConvLayer(nn.Module):
    """Optional FIR blur and stride-2 conv, then bias and scaled leaky ReLU (if ``activate``).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel side.
        downsample: halve the resolution (blur, then a stride-2 convolution).
        activate: add a bias and apply the leaky ReLU with gain sqrt(2); else a plain bias (or none).
        bias: whether the layer has a bias at all.
        blur_taps: FIR taps of the anti-aliasing filter.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        downsample: bool = False,
        activate: bool = True,
        bias: bool = True,
        blur_taps: Sequence[float] = DEFAULT_BLUR_TAPS,
    ) -> None:
        super().__init__()
        self.downsample = downsample
        if downsample:
            self.register_buffer("kernel", fir_kernel(blur_taps), persistent=False)
            # The blur's padding makes the stride-2 valid convolution give exactly H/2.
            excess = (len(blur_taps) - 2) + (kernel_size - 1)
            self.blur_pad = ((excess + 1) // 2, excess // 2)
        self.conv = EqualConv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=2 if downsample else 1,
            padding=0 if downsample else kernel_size // 2,
            bias=bias and not activate,
        )
        self.activate = activate
        self.bias = nn.Parameter(torch.zeros(out_channels)) if activate and bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample:
            x = upfirdn2d(x, self.kernel, pad=self.blur_pad)
        x = self.conv(x)
        if self.activate:
            x = biased_leaky_relu(x, self.bias)
        return x


class ResidualBlock(nn.Module):
    """Two 3x3 convs (the second downsamples) plus a 1x1 downsampling skip, summed over sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int, *, blur_taps: Sequence[float] = DEFAULT_BLUR_TAPS) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3, blur_taps=blur_taps)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=True, blur_taps=blur_taps)
        self.skip = ConvLayer(
            in_channels, out_channels, 1, downsample=True, activate=False, bias=False, blur_taps=blur_taps
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2.0)


class MinibatchStddev(nn.Module):
    """Appends the within-group standard deviation of the features as extra channels.

    Args:
        group_size: samples per group (the batch is split into groups of at most this size).
        features: how many channel groups get their own statistic.
    """

    def __init__(self, *, group_size: int = 4, features: int = 1) -> None:
        super().__init__()
        self.group_size = group_size
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        group = min(batch, self.group_size)
        if batch % group:
            # a batch that does not split evenly uses the largest group size that does
            group = math.gcd(batch, group)
        y = x.reshape(group, -1, self.features, channels // self.features, height, width)  # [G, B/G, F, C/F, H, W]
        y = torch.sqrt(y.var(dim=0, unbiased=False) + 1e-8)  # [B/G, F, C/F, H, W]
        y = y.mean(dim=[2, 3, 4])  # [B/G, F]
        y = y.reshape(-1, self.features, 1, 1).repeat(group, 1, height, width)  # [B, F, H, W]
        return torch.cat([x, y], dim=1)


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator.

    Args:
        resolution: input side in pixels, a power of two >= 8.
        channels: feature channels per resolution ``{resolution: c, ..., 4: c4}``.
        mbstd_group_size: group size of the minibatch standard-deviation feature.
        mbstd_features: number of standard-deviation channels appended.
        blur_taps: FIR taps used before every downsampling.
    """

    def __init__(
        self,
        resolution: int,
        *,
        channels: Mapping[int, int],
        mbstd_group_size: int = 4,
        mbstd_features: int = 1,
        blur_taps: Sequence[float] = DEFAULT_BLUR_TAPS,
    ) -> None:
        super().__init__()
        log_size = int(math.log2(resolution))
        if resolution < 8 or 2**log_size != resolution:
            raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")
        table = {int(r): int(c) for r, c in channels.items()}
        missing = [2**i for i in range(2, log_size + 1) if 2**i not in table]
        if missing:
            raise ValueError(f"channel table lacks resolutions {missing}")
        self.resolution = resolution
        self.channels = {2**i: table[2**i] for i in range(2, log_size + 1)}
        self.from_rgb = ConvLayer(3, table[resolution], 1)
        self.blocks = nn.Sequential(
            *[ResidualBlock(table[2**i], table[2 ** (i - 1)], blur_taps=blur_taps) for i in range(log_size, 2, -1)]
        )
        self.stddev = MinibatchStddev(group_size=mbstd_group_size, features=mbstd_features)
        self.final_conv = ConvLayer(table[4] + mbstd_features, table[4], 3)
        self.final_linear = nn.Sequential(
            EqualLinear(table[4] * 4 * 4, table[4], activate=True), EqualLinear(table[4], 1)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Score images.

        Args:
            images: ``[B, 3, resolution, resolution]`` in [-1, 1].

        Returns:
            Logits ``[B, 1]``: high for real.
        """
        if images.ndim != 4 or images.shape[1:] != (3, self.resolution, self.resolution):
            raise ValueError(f"images must be [B, 3, {self.resolution}, {self.resolution}], got {list(images.shape)}")
        x = self.blocks(self.from_rgb(images))  # [B, C4, 4, 4]
        x = self.final_conv(self.stddev(x))
        return self.final_linear(x.flatten(1))  # [B, 1]
