"""Image grids as PNG files."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sphinx.utils.files import atomic_open


def image_grid(images: torch.Tensor, *, columns: int | None = None, padding: int = 0) -> np.ndarray:
    """Tile a batch into one picture.

    Args:
        images: ``[B, 3, H, W]`` in [-1, 1] (clamped).
        columns: images per row; default ``ceil(sqrt(B))``.
        padding: white pixels between tiles.

    Returns:
        ``[rows * (H + padding) - padding, columns * (W + padding) - padding, 3]`` uint8.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [B, 3, H, W], got {list(images.shape)}")
    batch, _, height, width = images.shape
    columns = columns or math.ceil(math.sqrt(batch))
    rows = math.ceil(batch / columns)
    pixels = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    pixels = pixels.permute(0, 2, 3, 1).numpy()  # [B, H, W, 3]
    grid = np.full((rows * (height + padding) - padding, columns * (width + padding) - padding, 3), 255, np.uint8)
    for index, tile in enumerate(pixels):
        top, left = (index // columns) * (height + padding), (index % columns) * (width + padding)
        grid[top : top + height, left : left + width] = tile
    return grid


def save_grid(
    images: torch.Tensor, path: str | os.PathLike[str], *, columns: int | None = None, padding: int = 0
) -> Path:
    """Write :func:`image_grid` to a PNG file atomically (a reader never sees half a file)."""
    path = Path(path)
    with atomic_open(path) as stream:
        Image.fromarray(image_grid(images, columns=columns, padding=padding)).save(stream, format="PNG")
    return path
