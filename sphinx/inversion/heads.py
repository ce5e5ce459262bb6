"""SPHInX projection heads, batched: every image owns its own weights, in one tensor.

Each parameter has a leading image axis, so one ``einsum`` serves the whole batch while Adam
(an elementwise optimizer) updates every image exactly as if it were alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from sphinx.utils.seeding import image_generator

BOTTLENECK = 32
CONTENT_INPUT_SHAPE = (8, 4, 4)


def _default_linear(out_dim: int, in_dim: int, draw: torch.Generator) -> list[torch.Tensor]:
    """PyTorch's default ``nn.Linear`` init: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in))."""
    bound = 1.0 / math.sqrt(in_dim)
    return [
        (torch.rand(out_dim, in_dim, generator=draw) * 2 - 1) * bound,
        (torch.rand(out_dim, generator=draw) * 2 - 1) * bound,
    ]


def float32_head(x: torch.Tensor) -> torch.autocast:
    """Heads run in float32 even inside the generator's bfloat16 autocast: they are tiny, and
    their output steers every layer of the generator."""
    return torch.autocast(device_type=x.device.type, enabled=False)


class BatchedHead:
    """Named weight tensors with the image axis first, saved and restored per image.

    Args:
        tensors: the head's weights, each ``[B, ...]``.
    """

    PREFIX = ""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors = tensors

    @classmethod
    def from_states(cls, states: Sequence[dict[str, torch.Tensor]]):
        """Rebuild a batch of heads from per-image :meth:`state` dicts."""
        names = [n.removeprefix(cls.PREFIX) for n in states[0] if n.startswith(cls.PREFIX)]
        return cls({n: torch.stack([s[cls.PREFIX + n] for s in states]) for n in names})

    def parameters(self) -> list[torch.Tensor]:
        return list(self.tensors.values())

    def named_tensors(self) -> dict[str, torch.Tensor]:
        """The live weights ``[B, ...]`` under their state names (prefixed)."""
        return {self.PREFIX + n: t for n, t in self.tensors.items()}


class StyleHead(BatchedHead):
    """Style projection head Ps: random per-row inputs -> W+ latents, one head per image.

    One encoder (d -> d/2 -> d/4 -> bottleneck, ReLU after the first layer only) is shared by
    all W+ rows of an image; each row has its own decoder (bottleneck -> 64 -> 128 -> d, ReLU
    after the first layer only).

    Args:
        tensors: named weights, each with the image axis first: ``encoder.{k}.weight``
            ``[B, out, in]``, ``encoder.{k}.bias`` ``[B, out]``, ``decoder.{k}.weight``
            ``[B, n_latent, out, in]``, ``decoder.{k}.bias`` ``[B, n_latent, out]``, k = 0..2.
    """

    PREFIX = "style_head."

    @classmethod
    def initialize(
        cls,
        ids: Sequence,
        n_latent: int,
        style_dim: int,
        *,
        seed: int,
        bottleneck: int = BOTTLENECK,
        device: torch.device | str = "cpu",
        anchor: torch.Tensor | None = None,
        output_scale: float = 1.0,
    ) -> StyleHead:
        """Fresh heads with PyTorch's default Linear init, image i's drawn from (seed, id).

        Args:
            anchor: optional W ``[style_dim]`` (e.g. the mean W): adds a trained output bias
                ``[n_latent, style_dim]`` started there, so the head starts near that latent
                instead of at a random point (not in the authors' code).
            output_scale: multiplies the last decoder layer's initial weights and biases.
        """
        encoder_dims = [style_dim, style_dim // 2, style_dim // 4, bottleneck]
        decoder_dims = [bottleneck, 64, 128, style_dim]
        per_image: dict[str, list[torch.Tensor]] = {}
        for image_id in ids:
            draw = image_generator(seed, image_id, "style_head")
            for k in range(3):
                weight, bias = _default_linear(encoder_dims[k + 1], encoder_dims[k], draw)
                per_image.setdefault(f"encoder.{k}.weight", []).append(weight)
                per_image.setdefault(f"encoder.{k}.bias", []).append(bias)
            rows = [
                [_default_linear(decoder_dims[k + 1], decoder_dims[k], draw) for k in range(3)] for _ in range(n_latent)
            ]
            for k in range(3):
                per_image.setdefault(f"decoder.{k}.weight", []).append(torch.stack([r[k][0] for r in rows]))
                per_image.setdefault(f"decoder.{k}.bias", []).append(torch.stack([r[k][1] for r in rows]))
        tensors = {name: torch.stack(values) for name, values in per_image.items()}
        tensors["decoder.2.weight"] *= output_scale
        tensors["decoder.2.bias"] *= output_scale
        if anchor is not None:
            tensors["output.bias"] = anchor.detach().cpu().float().expand(len(ids), n_latent, style_dim).clone()
        return cls({name: t.to(device).requires_grad_() for name, t in tensors.items()})

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """Map inputs z ``[B, n_latent, d]`` to W+ ``[B, n_latent, d]``."""
        with float32_head(z):
            return self._forward(z)

    def _forward(self, z: torch.Tensor) -> torch.Tensor:
        h = z
        for k in range(3):
            h = torch.einsum("bli,boi->blo", h, self.tensors[f"encoder.{k}.weight"])
            h = h + self.tensors[f"encoder.{k}.bias"][:, None]  # [B, L, out]
            h = torch.relu(h) if k == 0 else h
        for k in range(3):
            h = torch.einsum("bli,bloi->blo", h, self.tensors[f"decoder.{k}.weight"])
            h = h + self.tensors[f"decoder.{k}.bias"]  # [B, L, out]
            h = torch.relu(h) if k == 0 else h
        if "output.bias" in self.tensors:
            h = h + self.tensors["output.bias"]  # [B, L, d]
        return h


class ContentHead(BatchedHead):
    """Content projection head Pc: a random ``[8, 4, 4]`` input -> the generator's 4x4 input.

    Three 1x1 equalized-lr convolutions without bias (8 -> 32 -> 128 -> C4), each of the first
    two followed by a biased leaky ReLU (slope 0.2, gain sqrt(2)). Its output replaces the
    learned constant.

    Args:
        tensors: ``conv.{k}.weight`` ``[B, out, in]`` (k = 0..2) and ``activation.{k}.bias``
            ``[B, out]`` (k = 0, 1), each with the image axis first.
    """

    PREFIX = "content_head."
    WIDTHS = (CONTENT_INPUT_SHAPE[0], 32, 128)

    @classmethod
    def initialize(
        cls,
        ids: Sequence,
        out_channels: int,
        *,
        seed: int,
        device: torch.device | str = "cpu",
        anchor: torch.Tensor | None = None,
        output_scale: float = 1.0,
    ) -> ContentHead:
        """Fresh heads: conv weights ~ N(0, 1) (scaled at run time), biases 0.

        Args:
            anchor: optional 4x4 input ``[C4, 4, 4]`` (e.g. the generator's learned constant):
                adds a trained output bias started there, so the head starts at the input the
                generator was trained with instead of a random one (not in the authors' code).
            output_scale: multiplies the last convolution's initial weights.
        """
        dims = [*cls.WIDTHS, out_channels]
        tensors: dict[str, torch.Tensor] = {}
        draws = [image_generator(seed, image_id, "content_head") for image_id in ids]
        for k in range(3):
            tensors[f"conv.{k}.weight"] = torch.stack([torch.randn(dims[k + 1], dims[k], generator=d) for d in draws])
        tensors["conv.2.weight"] *= output_scale
        for k in range(2):
            tensors[f"activation.{k}.bias"] = torch.zeros(len(draws), dims[k + 1])
        if anchor is not None:
            tensors["output.bias"] = anchor.detach().cpu().float().expand(len(draws), *anchor.shape[-3:]).clone()
        return cls({name: t.to(device).requires_grad_() for name, t in tensors.items()})

    def __call__(self, s: torch.Tensor) -> torch.Tensor:
        """Map s ``[B, 8, 4, 4]`` to the 4x4 input ``[B, C4, 4, 4]``."""
        with float32_head(s):
            return self._forward(s)

    def _forward(self, s: torch.Tensor) -> torch.Tensor:
        h = s
        for k in range(3):
            weight = self.tensors[f"conv.{k}.weight"]
            h = torch.einsum("bihw,boi->bohw", h, weight / math.sqrt(weight.shape[2]))
            if k < 2:
                h = F.leaky_relu(h + self.tensors[f"activation.{k}.bias"][:, :, None, None], 0.2) * math.sqrt(2)
        if "output.bias" in self.tensors:
            h = h + self.tensors["output.bias"]  # [B, C4, 4, 4]
        return h
