"""Per-image noise maps, their regularizer and their renormalization.

Everything here reduces over the pixels of one image at a time: a port of the StyleGAN2
projector normalized the maps over the whole batch, which makes each image's result depend
on the others.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from sphinx.utils.seeding import per_image_randn


class NoiseMaps:
    """One trainable noise map per generator layer and image, ``[B, 1, r, r]`` each.

    Args:
        ids: image ids; image i's maps are drawn N(0, 1) from (seed, id).
        resolutions: side of each layer's map (``G.noise_resolutions``).
        seed: run seed.
        device: where the maps live.
        initial: maps to start from instead, each ``[1 or B, 1, r, r]`` (e.g. the generator's
            stored noise); copied per image.
    """

    def __init__(
        self,
        ids: Sequence,
        resolutions: Sequence[int],
        *,
        seed: int,
        device: torch.device | str = "cpu",
        initial: Sequence[torch.Tensor] | None = None,
    ) -> None:
        if initial is None:
            self.maps = [
                per_image_randn((1, side, side), list(ids), seed, "noise", layer, device=device)
                for layer, side in enumerate(resolutions)
            ]
        else:
            self.maps = [m.detach().to(device).expand(len(ids), -1, -1, -1).clone() for m in initial]
        for noise_map in self.maps:
            noise_map.requires_grad_()

    def parameters(self) -> list[torch.Tensor]:
        return list(self.maps)

    @torch.no_grad()
    def renormalize(self) -> None:
        """Shift and scale each image's maps to zero mean and unit variance."""
        for noise_map in self.maps:
            noise_map -= noise_map.mean(dim=(1, 2, 3), keepdim=True)
            noise_map *= noise_map.square().mean(dim=(1, 2, 3), keepdim=True).rsqrt()

    def named_tensors(self) -> dict[str, torch.Tensor]:
        """The live maps ``[B, 1, r, r]`` under their state names."""
        return {f"noise.{layer}": m for layer, m in enumerate(self.maps)}


def noise_regularization(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Multi-scale autocorrelation penalty of the StyleGAN2 projector, per image.

    At each scale (down to 8x8, halving by average pooling) it adds the squared mean of the map
    times itself shifted by one pixel, along x and along y. White noise gives about 0; smooth
    maps, which could smuggle image content into the noise, give large values.

    The maps of one side, and the larger ones pooled down to it, are scored together (a few
    dozen ops instead of a thousand); the terms are then added in the projector's order, map by
    map, largest scale first, so that the sum rounds as it always did.

    Args:
        maps: noise maps ``[B, 1, r, r]``.

    Returns:
        ``[B]`` penalty.
    """
    sides = sorted({m.shape[-1] for m in maps}, reverse=True)
    layers: list[int] = []  # the map of each channel of `current`
    current = None
    terms = []  # ((layer, -side, axis), [B] squared mean), in any order
    for side in sides:
        native = [layer for layer, m in enumerate(maps) if m.shape[-1] == side]
        if current is not None and current.shape[-1] > 8 and current.shape[-1] == 2 * side:
            # the larger maps keep halving down to 8x8
            current = torch.cat([F.avg_pool2d(current, kernel_size=2), *(maps[i] for i in native)], dim=1)
            layers = layers + native
        else:
            current, layers = torch.cat([maps[i] for i in native], dim=1), native  # [B, n, side, side]
        along_x = (current * torch.roll(current, shifts=1, dims=3)).mean(dim=(2, 3))  # [B, n]
        along_y = (current * torch.roll(current, shifts=1, dims=2)).mean(dim=(2, 3))
        squared = torch.stack([along_x, along_y], dim=2).square().flatten(1)  # [B, 2n]: x, y of each map
        keys = [(layer, -side, axis) for layer in layers for axis in (0, 1)]
        terms += zip(keys, squared.unbind(dim=1))
    terms.sort(key=lambda term: term[0])  # map by map, largest scale first, x before y
    total = terms[0][1]
    for _, term in terms[1:]:
        total = total + term
    return total
