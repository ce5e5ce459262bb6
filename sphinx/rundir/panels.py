"""Labelled image panels a person can read: titled columns, a caption per row, large tiles.

Plain numpy + Pillow (+ a matplotlib colormap for error maps), so every writer of pictures
(the run's comparison.png, W&B panels, editing strips) composes them the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sphinx.utils.text import image_id_to_text, one_line

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
GAP = 4
# |error| of this many [0, 1] units or more is drawn at the top of the colormap.
ERROR_FULL_SCALE = 0.5


def upscale_nearest(pixels: np.ndarray, side: int) -> np.ndarray:
    """Resize an ``[H, W, 3]`` uint8 tile to ``side`` x ``side`` with nearest-neighbour sampling.

    Pixels stay crisp blocks, so a 64 px reconstruction shows exactly what the generator made.
    """
    return np.asarray(Image.fromarray(pixels).resize((side, side), Image.Resampling.NEAREST))


def error_map(reconstruction: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-pixel ``|reconstruction - target|`` (mean over channels) as an ``inferno`` colour image.

    Args:
        reconstruction, target: ``[H, W, 3]`` uint8.

    Returns:
        ``[H, W, 3]`` uint8; black is exact, yellow is an error of ``ERROR_FULL_SCALE`` or more.
    """
    from matplotlib import colormaps

    difference = np.abs(reconstruction.astype(np.float32) - target.astype(np.float32)).mean(axis=2) / 255.0
    colours = colormaps["inferno"](np.clip(difference / ERROR_FULL_SCALE, 0, 1))[..., :3]  # [H, W, 3]
    return (colours * 255 + 0.5).astype(np.uint8)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def labelled_grid(
    rows: Sequence[Sequence[np.ndarray]],
    *,
    column_titles: Sequence[str],
    row_labels: Sequence[str],
    tile_side: int = 256,
) -> np.ndarray:
    """Compose tiles into one picture with a title over each column and a caption over each row.

    Args:
        rows: one sequence of ``[h, w, 3]`` uint8 tiles per row, all rows the same length.
        column_titles: one title per column.
        row_labels: one caption per row (e.g. the image id and its scores). Titles and captions
            are drawn on one line each, a character that would break it escaped
            (:func:`sphinx.utils.text.one_line`).
        tile_side: every tile is shown at this size (nearest-neighbour).

    Returns:
        ``[H, W, 3]`` uint8 picture.
    """
    columns = len(column_titles)
    if any(len(row) != columns for row in rows) or len(row_labels) != len(rows):
        raise ValueError(f"need {columns} tiles per row and one label per row")
    font_size = max(10, min(18, tile_side // 12))
    title_font, label_font = _font(font_size + 2), _font(font_size)
    title_height, label_height = font_size + 12, font_size + 8
    width = columns * tile_side + (columns + 1) * GAP
    height = title_height + len(rows) * (label_height + tile_side + GAP)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for column, title in enumerate(column_titles):
        left = GAP + column * (tile_side + GAP)
        draw.text(
            (left + tile_side // 2, title_height // 2),
            _fit(draw, title, title_font, tile_side),
            fill=INK,
            font=title_font,
            anchor="mm",
        )
    top = title_height
    for row, label in zip(rows, row_labels):
        draw.text(
            (GAP, top + label_height // 2),
            _fit(draw, label, label_font, width - 2 * GAP),
            fill=INK,
            font=label_font,
            anchor="lm",
        )
        top += label_height
        for column, tile in enumerate(row):
            canvas.paste(Image.fromarray(upscale_nearest(tile, tile_side)), (GAP + column * (tile_side + GAP), top))
        top += tile_side + GAP
    return np.asarray(canvas)


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """``text`` on one line, shortened with an ellipsis until it fits in ``width`` pixels."""
    text = one_line(text)
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def comparison_grid(
    targets: Sequence[np.ndarray],
    reconstructions: Sequence[np.ndarray],
    *,
    observations: Sequence[np.ndarray] | None,
    row_labels: Sequence[str],
    tile_side: int = 256,
) -> np.ndarray:
    """target | observation | reconstruction | error, one row per image, titled and labelled.

    Args:
        targets, reconstructions: ``[h, w, 3]`` uint8 tiles, one per image.
        observations: what the method saw (the degraded input), or None to leave the column
            out (no degradation: it would repeat the target).
        row_labels: one caption per image.
        tile_side: size each tile is shown at.
    """
    error_title = f"|error| (yellow: {ERROR_FULL_SCALE:g} or more)" if tile_side >= 200 else "|error|"
    titles = ["target", *(["observation"] if observations is not None else []), "reconstruction", error_title]
    rows = []
    for index, (target, reconstruction) in enumerate(zip(targets, reconstructions)):
        seen = [observations[index]] if observations is not None else []
        rows.append([target, *seen, reconstruction, error_map(reconstruction, target)])
    return labelled_grid(rows, column_titles=titles, row_labels=row_labels, tile_side=tile_side)


def score_label(image_id: str, psnr: float | None, ssim: float | None) -> str:
    """``"astronaut  PSNR 23.41 dB  SSIM 0.712"``, leaving out what is unknown; the id in its text
    form (:func:`sphinx.utils.text.image_id_to_text`), as the run's tables write it."""
    parts = [image_id_to_text(image_id)]
    if psnr is not None:
        parts.append(f"PSNR {psnr:.2f} dB")
    if ssim is not None:
        parts.append(f"SSIM {ssim:.3f}")
    return "   ".join(parts)
