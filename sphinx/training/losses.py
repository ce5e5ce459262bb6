"""StyleGAN2 losses: non-saturating logistic loss, R1 and path-length regularization."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Logistic loss of the discriminator: ``softplus(D(fake)) + softplus(-D(real))``, batch mean.

    Args:
        real_logits: ``[B, 1]`` scores of real images.
        fake_logits: ``[B, 1]`` scores of generated images.
    """
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss ``softplus(-D(fake))``, batch mean."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """Squared gradient norm of the real scores w.r.t. the real images, batch mean.

    Args:
        real_logits: ``[B, 1]``, computed from ``real_images`` with ``requires_grad`` on.
        real_images: ``[B, 3, H, W]``.

    Returns:
        A scalar; the caller weights it by ``gamma / 2`` and the lazy interval.
    """
    (gradient,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return gradient.pow(2).flatten(1).sum(dim=1).mean()


def path_length_penalty(
    images: torch.Tensor, ws: torch.Tensor, mean_path_length: torch.Tensor, *, decay: float = 0.01
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Path-length regularizer: keep ``|J_w^T y|`` constant for random image-space directions y.

    Args:
        images: ``[B, 3, H, W]`` generated from ``ws``.
        ws: ``[B, n_latent, style_dim]`` latents with ``requires_grad`` on.
        mean_path_length: running mean of the path lengths (scalar tensor).
        decay: update rate of the running mean.

    Returns:
        ``(penalty, path_lengths [B], new running mean)``; the penalty is a scalar.
    """
    height, width = images.shape[2:]
    # scaled so that the expected |J^T y| does not depend on the resolution
    directions = torch.randn_like(images) / math.sqrt(height * width)
    (gradient,) = torch.autograd.grad((images * directions).sum(), ws, create_graph=True)
    lengths = gradient.pow(2).sum(dim=2).mean(dim=1).sqrt()  # [B]
    new_mean = mean_path_length + decay * (lengths.detach().mean() - mean_path_length)
    penalty = (lengths - new_mean).pow(2).mean()
    return penalty, lengths, new_mean.detach()
