"""The StyleGAN2 generator (config-f "skip" architecture) in plain PyTorch.

Parameter names and shapes follow the widely used PyTorch port of StyleGAN2, so its ``g_ema``
state dicts load with ``strict=True``; NVIDIA's pickles are converted to the same names
(:mod:`sphinx.generators.nvidia_pickle`). Everything is per sample: W+ styles, noise maps and the
4x4 input may all differ across the batch, because inversion optimizes many images at once.

Modulated convolutions use the "scale activations, shared-weight conv, scale outputs" form
rather than one grouped conv per sample. It is the same math (the demodulation coefficient
factorizes over input channels) and runs as an ordinary batched convolution, which is much
faster for the batch sizes inversion uses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sphinx.generators.ops import biased_leaky_relu, fir_kernel, upfirdn2d
from sphinx.utils.batch_invariance import samplewise

DEFAULT_BLUR_TAPS = (1, 3, 3, 1)

# A sane bound, checked by the loaders before anything is allocated: no published StyleGAN2
# exceeds 1024 px.
MAX_RESOLUTION = 4096


def default_channels(resolution: int, *, channel_multiplier: int = 2, channel_max: int = 512) -> dict[int, int]:
    """The channel table of the official configs: 512 up to 32 px, then halving.

    ``channel_multiplier=2`` is config-f (FFHQ 1024, AFHQ, MetFaces); ``1`` is the 256 px
    "paper256" table.
    """
    base = {
        4: 512,
        8: 512,
        16: 512,
        32: 512,
        64: 256 * channel_multiplier,
        128: 128 * channel_multiplier,
        256: 64 * channel_multiplier,
        512: 32 * channel_multiplier,
        1024: 16 * channel_multiplier,
    }
    return {r: min(c, channel_max) for r, c in base.items() if r <= resolution}


def num_latents(resolution: int) -> int:
    """W+ rows of a generator: two per block plus the 4x4 conv and the final ToRGB."""
    return 2 * int(math.log2(resolution)) - 2


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate: stored weights are scaled at run time."""

    def __init__(
        self, in_dim: int, out_dim: int, *, bias_init: float = 0.0, lr_mul: float = 1.0, activate: bool = False
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activate:
            return biased_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class Blur(nn.Module):
    """FIR low-pass applied after the transposed (upsampling) convolution."""

    def __init__(self, taps: Sequence[float], *, pad: tuple[int, int], gain: float) -> None:
        super().__init__()
        self.register_buffer("kernel", fir_kernel(taps, gain=gain))
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """2x FIR upsampling of the RGB skip connection."""

    def __init__(self, taps: Sequence[float], *, factor: int = 2) -> None:
        super().__init__()
        self.register_buffer("kernel", fir_kernel(taps, gain=factor**2))
        self.factor = factor
        excess = len(taps) - factor
        self.pad = ((excess + 1) // 2 + factor - 1, excess // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class ModulatedConv2d(nn.Module):
    """Convolution whose input channels are scaled per sample by a style, then demodulated."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        *,
        demodulate: bool = True,
        upsample: bool = False,
        blur_taps: Sequence[float] = DEFAULT_BLUR_TAPS,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        if upsample:
            # Transposed stride-2 conv grows H to 2H + k - 2; the blur's padding brings it to 2H.
            excess = (len(blur_taps) - 2) - (kernel_size - 1)
            self.blur = Blur(blur_taps, pad=((excess + 1) // 2 + 1, excess // 2 + 1), gain=4)
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.demodulate = demodulate
        self.upsample = upsample

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Args: x ``[B, in, H, W]``; style ``[B, style_dim]``. Returns ``[B, out, H', W']``."""
        styles = samplewise(self.modulation, style)  # [B, in]
        weight = self.weight[0] * self.scale  # [out, in, k, k]
        x = x * styles[:, :, None, None].to(x.dtype)
        if self.upsample:
            x = samplewise(lambda sample: F.conv_transpose2d(sample, weight.transpose(0, 1), stride=2), x)
            x = self.blur(x)
        else:
            x = samplewise(lambda sample: F.conv2d(sample, weight, padding=self.kernel_size // 2), x)
        if self.demodulate:
            # sum over (in, kh, kw) of (w * s)^2 factorizes into s^2 @ sum_k w^2.
            weight_energy = weight.pow(2).sum(dim=[2, 3])  # [out, in]
            demod = torch.rsqrt(samplewise(lambda s: s.pow(2) @ weight_energy.t(), styles) + 1e-8)  # [B, out]
            x = x * demod[:, :, None, None].to(x.dtype)
        return x


class NoiseInjection(nn.Module):
    """Adds a single learned strength times a per-pixel noise map, shared by all channels."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return x + self.weight * noise


class BiasedLeakyReLU(nn.Module):
    """Per-channel bias followed by leaky ReLU with the sqrt(2) gain, optionally clamped."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, *, clamp: float | None = None) -> torch.Tensor:
        return biased_leaky_relu(x, self.bias, clamp=clamp)


class StyledConv(nn.Module):
    """Modulated 3x3 conv, noise, bias and activation: one synthesis layer."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        style_dim: int,
        *,
        upsample: bool = False,
        blur_taps: Sequence[float] = DEFAULT_BLUR_TAPS,
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, style_dim, upsample=upsample, blur_taps=blur_taps)
        self.noise = NoiseInjection()
        self.activate = BiasedLeakyReLU(out_channels)

    def forward(
        self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor, *, clamp: float | None = None
    ) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, style), noise), clamp=clamp)


class ToRGB(nn.Module):
    """1x1 modulated conv to RGB (no demodulation), added to the upsampled previous RGB."""

    def __init__(
        self, in_channels: int, style_dim: int, *, upsample: bool = True, blur_taps: Sequence[float] = DEFAULT_BLUR_TAPS
    ) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        if upsample:
            self.upsample = Upsample(blur_taps)
        self.conv = ModulatedConv2d(in_channels, 3, 1, style_dim, demodulate=False)

    def forward(
        self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None, *, clamp: float | None = None
    ) -> torch.Tensor:
        rgb = self.conv(x, style) + self.bias
        if clamp is not None:
            rgb = rgb.clamp(-clamp, clamp)
        if skip is not None:
            rgb = rgb + self.upsample(skip)
        return rgb


class ConstantInput(nn.Module):
    """The learned 4x4 input of the synthesis network."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, 4, 4))


class Generator(nn.Module):
    """StyleGAN2 mapping and synthesis networks.

    Args:
        resolution: output side in pixels, a power of two >= 4.
        style_dim: width of z and w.
        n_mlp: depth of the mapping network.
        channels: feature channels per resolution ``{4: c4, 8: c8, ...}`` up to ``resolution``;
            default: the official table for ``channel_multiplier``.
        channel_multiplier: selects the default table (2 = config-f, 1 = paper256).
        lr_mlp: learning-rate multiplier of the mapping layers (scales their stored values).
        blur_taps: FIR filter taps of the up-sampling layers.
        conv_clamp: clamp of every layer's output (NVIDIA's ADA configs use 256), or None.
    """

    def __init__(
        self,
        resolution: int,
        style_dim: int = 512,
        n_mlp: int = 8,
        *,
        channels: Mapping[int, int] | None = None,
        channel_multiplier: int = 2,
        lr_mlp: float = 0.01,
        blur_taps: Sequence[float] = DEFAULT_BLUR_TAPS,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        log_size = int(math.log2(resolution)) if resolution >= 4 else 0
        if resolution < 4 or 2**log_size != resolution:
            raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
        table = (
            dict(channels)
            if channels is not None
            else default_channels(resolution, channel_multiplier=channel_multiplier)
        )
        table = {int(r): int(c) for r, c in table.items()}
        missing = [2**i for i in range(2, log_size + 1) if 2**i not in table]
        if missing:
            raise ValueError(f"channel table lacks resolutions {missing}")
        self.resolution = resolution
        self.style_dim = style_dim
        self.n_mlp = n_mlp
        self.channels = {2**i: table[2**i] for i in range(2, log_size + 1)}
        self.lr_mlp = lr_mlp
        self.blur_taps = tuple(blur_taps)
        self.conv_clamp = conv_clamp
        self.n_latent = num_latents(resolution)
        self.num_noise_layers = 2 * log_size - 3

        layers: list[nn.Module] = [_PixelNorm()]
        layers += [EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activate=True) for _ in range(n_mlp)]
        self.style = nn.Sequential(*layers)

        self.input = ConstantInput(self.channels[4])
        self.conv1 = StyledConv(self.channels[4], self.channels[4], style_dim, blur_taps=blur_taps)
        self.to_rgb1 = ToRGB(self.channels[4], style_dim, upsample=False, blur_taps=blur_taps)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_channels = self.channels[4]
        for i in range(3, log_size + 1):
            out_channels = self.channels[2**i]
            self.convs.append(StyledConv(in_channels, out_channels, style_dim, upsample=True, blur_taps=blur_taps))
            self.convs.append(StyledConv(out_channels, out_channels, style_dim, blur_taps=blur_taps))
            self.to_rgbs.append(ToRGB(out_channels, style_dim, blur_taps=blur_taps))
            in_channels = out_channels
        self.noises = nn.Module()
        for index, side in enumerate(self.noise_resolutions):
            self.noises.register_buffer(f"noise_{index}", torch.randn(1, 1, side, side))
        # w_avg travels with the model (device moves) but is not part of the port's state dict.
        self.register_buffer("latent_avg", None, persistent=False)

    @property
    def noise_resolutions(self) -> list[int]:
        """Side of each noise map, in layer order: 4, then two per block."""
        return [4] + [2**i for i in range(3, int(math.log2(self.resolution)) + 1) for _ in range(2)]

    @property
    def config(self) -> dict:
        """Constructor keywords that rebuild this architecture."""
        return {
            "resolution": self.resolution,
            "style_dim": self.style_dim,
            "n_mlp": self.n_mlp,
            "channels": dict(self.channels),
            "lr_mlp": self.lr_mlp,
            "blur_taps": list(self.blur_taps),
            "conv_clamp": self.conv_clamp,
        }

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """Map latent codes z ``[B, style_dim]`` to intermediate latents w ``[B, style_dim]``."""
        if z.ndim != 2 or z.shape[1] != self.style_dim:
            raise ValueError(f"z must be [B, {self.style_dim}], got {list(z.shape)}")
        return self.style(z)

    @torch.no_grad()
    def mean_latent(self, n: int = 10_000, seed: int = 0) -> torch.Tensor:
        """Mean of ``mapping(z)`` over ``n`` seeded draws of z, shape ``[1, style_dim]``."""
        draw = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.style_dim, generator=draw).to(self.input.input.device)
        return self.mapping(z).mean(dim=0, keepdim=True)

    def make_noise(self, batch: int = 1, *, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Fresh N(0, 1) noise maps ``[batch, 1, r, r]`` for every layer."""
        device = self.input.input.device
        return [
            torch.randn(batch, 1, side, side, generator=generator, device=device) for side in self.noise_resolutions
        ]

    def stored_noise(self) -> list[torch.Tensor]:
        """The checkpoint's constant noise maps, ``[1, 1, r, r]`` each."""
        return [getattr(self.noises, f"noise_{i}") for i in range(self.num_noise_layers)]

    def synthesis(
        self, ws: torch.Tensor, noise: Sequence[torch.Tensor] | None = None, input: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Render images from per-layer styles.

        Args:
            ws: W+ latents ``[B, n_latent, style_dim]``.
            noise: one map per layer, each ``[B or 1, 1, r, r]``; None uses the stored maps.
            input: per-sample 4x4 input ``[B, C4, 4, 4]`` replacing the learned constant; None
                uses the constant.

        Returns:
            Images ``[B, 3, resolution, resolution]``, nominally in [-1, 1] (not clamped).
        """
        if ws.ndim != 3 or ws.shape[1:] != (self.n_latent, self.style_dim):
            raise ValueError(f"ws must be [B, {self.n_latent}, {self.style_dim}], got {list(ws.shape)}")
        batch = ws.shape[0]
        noise = self.stored_noise() if noise is None else list(noise)
        if len(noise) != self.num_noise_layers:
            raise ValueError(f"expected {self.num_noise_layers} noise maps, got {len(noise)}")
        for side, layer_noise in zip(self.noise_resolutions, noise):
            if (
                layer_noise.ndim != 4
                or layer_noise.shape[1:] != (1, side, side)
                or layer_noise.shape[0] not in (1, batch)
            ):
                raise ValueError(
                    f"noise map for {side}px must be [{batch} or 1, 1, {side}, {side}], got {list(layer_noise.shape)}"
                )
        if input is None:
            x = self.input.input.expand(batch, -1, -1, -1)
        else:
            if input.shape != (batch, self.channels[4], 4, 4):
                raise ValueError(f"input must be [{batch}, {self.channels[4]}, 4, 4], got {list(input.shape)}")
            x = input
        clamp = self.conv_clamp
        x = self.conv1(x, ws[:, 0], noise[0], clamp=clamp)
        rgb = self.to_rgb1(x, ws[:, 1], clamp=clamp)
        # Row 2k+1 feeds the up-conv of block k, 2k+2 its second conv, and 2k+3 its ToRGB,
        # which shares the row with the next block's up-conv.
        for block, to_rgb in enumerate(self.to_rgbs):
            row = 2 * block + 1
            x = self.convs[2 * block](x, ws[:, row], noise[row], clamp=clamp)
            x = self.convs[2 * block + 1](x, ws[:, row + 1], noise[row + 1], clamp=clamp)
            rgb = to_rgb(x, ws[:, row + 2], rgb, clamp=clamp)
        return rgb

    def truncate(
        self, w: torch.Tensor, truncation: float, truncation_latent: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Pull latents toward the average latent: ``avg + truncation * (w - avg)``."""
        if truncation == 1.0:
            return w
        center = truncation_latent if truncation_latent is not None else self.latent_avg
        if center is None:
            raise ValueError(
                "truncation < 1 needs truncation_latent (or a checkpoint with latent_avg); "
                "compute one with G.mean_latent()"
            )
        return center.reshape(1, self.style_dim).to(w) + truncation * (w - center.reshape(1, self.style_dim).to(w))

    def forward(
        self,
        z: torch.Tensor,
        truncation: float = 1.0,
        truncation_latent: torch.Tensor | None = None,
        noise: Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Sample images from z ``[B, style_dim]``; W is broadcast to every layer.

        Returns:
            Images ``[B, 3, resolution, resolution]``.
        """
        w = self.truncate(self.mapping(z), truncation, truncation_latent)
        ws = w[:, None, :].expand(-1, self.n_latent, -1)  # [B, n_latent, style_dim]
        return self.synthesis(ws, noise=noise)


class _PixelNorm(nn.Module):
    """Normalize each latent vector to unit root-mean-square over its features."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)
