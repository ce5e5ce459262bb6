"""The reconstruction loss, per image: weighted LPIPS + MSE between A(G(.)) and y."""

from __future__ import annotations

import torch
import torch.nn.functional as F

LPIPS_MAX_SIDE = 256
LPIPS_MIN_SIDE = 32  # VGG's pooling leaves nothing of smaller images


def lpips_applies(images: torch.Tensor) -> bool:
    """Whether LPIPS can compare images like these: at least 32 px a side."""
    return min(images.shape[-2:]) >= LPIPS_MIN_SIDE


def pool_for_lpips(images: torch.Tensor) -> torch.Tensor:
    """Average-pool by an integer factor so that the side is at most 256 px.

    Images at or under 256 px are used at native resolution (the authors skip LPIPS below
    256 px; computing it there is a documented deviation).
    """
    side = images.shape[-1]
    if side <= LPIPS_MAX_SIDE:
        return images
    factor = -(-side // LPIPS_MAX_SIDE)  # ceil, so the result is never above 256
    return F.avg_pool2d(images, kernel_size=factor)


class ReconstructionLoss:
    """Per-image loss terms between ``A(G(.))`` and a fixed observation ``y``.

    Args:
        operator: ``A``, the batch's bound degradation (called with the step, for fresh noise).
        observation: ``y``, ``[B, ...]``.
        lpips: a perceptual distance ``(x, y) -> [B]`` on images in [-1, 1], or None. When it
            has ``embed``/``distance`` (sphinx's LPIPS), the observation's features are computed
            once and reused at every step.
        use_lpips: whether LPIPS applies (the observation is an image of at least 32 px).
    """

    def __init__(self, operator, observation: torch.Tensor, *, lpips, use_lpips: bool) -> None:
        self.operator = operator
        self.observation = observation
        self.lpips = lpips if use_lpips else None
        self.observation_features = None
        if self.lpips is not None and hasattr(self.lpips, "embed"):
            with torch.no_grad():
                self.observation_features = self.lpips.embed(pool_for_lpips(observation))

    def perceptual(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """LPIPS between two image batches (pooled to at most 256 px), or None without LPIPS."""
        if self.lpips is None:
            return None
        return self.lpips(pool_for_lpips(x), pool_for_lpips(y))

    def __call__(self, images: torch.Tensor, *, step: int, with_lpips: bool = True) -> dict[str, torch.Tensor]:
        """Terms of G's images ``[B, 3, H, W]`` at ``step``: ``{"mse": [B]}``, plus ``"lpips": [B]``
        when LPIPS applies and is asked for."""
        prediction = self.operator(images, step=step)
        dims = tuple(range(1, prediction.ndim))
        terms = {"mse": (prediction - self.observation).square().mean(dim=dims)}
        if with_lpips and self.lpips is not None:
            pooled = pool_for_lpips(prediction)
            if self.observation_features is not None:
                terms["lpips"] = self.lpips.distance(self.lpips.embed(pooled), self.observation_features)
            else:
                terms["lpips"] = self.lpips(pooled, pool_for_lpips(self.observation))
        return terms
