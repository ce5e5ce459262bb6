"""Pictures of an edit: a labelled strip of frames (PNG) and an animated GIF, with Pillow."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from sphinx.data.images import to_uint8

LABEL_HEIGHT = 14
GAP = 2


def _upscaled(frame: torch.Tensor, scale: int) -> Image.Image:
    image = Image.fromarray(to_uint8(frame))
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST) if scale > 1 else image


def labelled_strip(
    frames: torch.Tensor, labels: Sequence[str], *, scale: int = 2, title: str | None = None
) -> np.ndarray:
    """Frames side by side (one or more rows), each column labelled underneath, on white.

    Args:
        frames: ``[F, 3, H, W]``, or ``[R, F, 3, H, W]`` for R rows, in [-1, 1].
        labels: one short label per column.
        scale: nearest-neighbour upscaling, so that small generators' frames stay visible.
        title: a line above the strip.

    Returns:
        ``[height, width, 3]`` uint8 pixels.
    """
    rows = frames[None] if frames.ndim == 4 else frames
    if len(labels) != rows.shape[1]:
        raise ValueError(f"need one label per frame: {rows.shape[1]} frames, {len(labels)} labels")
    side = rows.shape[-1] * scale
    top = LABEL_HEIGHT if title else 0
    height = top + len(rows) * (side + GAP) - GAP + LABEL_HEIGHT
    canvas = Image.new("RGB", (len(labels) * (side + GAP) - GAP, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    if title:
        draw.text((2, 1), title, fill="black", font=font)
    for row_index, row in enumerate(rows):
        for index, frame in enumerate(row):
            canvas.paste(_upscaled(frame, scale), (index * (side + GAP), top + row_index * (side + GAP)))
    for index, label in enumerate(labels):
        width = draw.textlength(label, font=font)
        draw.text(
            (index * (side + GAP) + max(0, (side - width) / 2), height - LABEL_HEIGHT + 1),
            label,
            fill="black",
            font=font,
        )
    return np.asarray(canvas)


def gif_bytes(frames: torch.Tensor, *, duration_ms: int = 250, scale: int = 2, bounce: bool = True) -> bytes:
    """An endlessly looping animated GIF of ``[F, 3, H, W]`` frames in [-1, 1].

    ``bounce`` plays the frames forward then back, so the loop has no jump.
    """
    images = [_upscaled(frame, scale) for frame in frames]
    if bounce and len(images) > 2:
        images = images + images[-2:0:-1]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return buffer.getvalue()
