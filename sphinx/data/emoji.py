"""Face emoji rendered from Noto Color Emoji: the training data of the shipped demo prior.

``python -m sphinx.data.emoji --out data/emoji64`` writes one PNG per face emoji (RGB, white
background, 64x64) and ``index.csv`` with the columns ``file, codepoints, name, group, split``.

The faces are the smileys, the people heads with every skin-tone modifier, and the animal faces
(lists below). A sequence is kept only if the installed font draws it as one non-blank glyph
that is not the font's "missing glyph" box. Ten percent of the base code points (every tenth in
sorted order) are held out for evaluation, together with all of their skin-tone variants, so no
held-out face has a near-duplicate in training. There is no randomness: the same font gives the
same files.

The font is the Debian package ``fonts-noto-color-emoji`` (SIL Open Font License).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from sphinx.errors import ImageError, SphinxError
from sphinx.utils.files import atomic_write_text

FONT_ENV = "SPHINX_EMOJI_FONT"
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/google-noto-emoji/NotoColorEmoji.ttf",
    "/usr/local/share/fonts/NotoColorEmoji.ttf",
)
# The font's only bitmap strike is 109 px; other sizes are refused by FreeType.
FONT_SIZE = 109
RESOLUTION = 64
HOLDOUT_EVERY = 10
HOLDOUT_OFFSET = 5
SKIN_TONES = (0x1F3FB, 0x1F3FC, 0x1F3FD, 0x1F3FE, 0x1F3FF)
VARIATION_SELECTOR_16 = 0xFE0F

# Face smileys (Unicode "Smileys & Emotion", face-* subgroups, plus the moon and sun faces).
SMILEYS: tuple[int, ...] = (
    *range(0x1F600, 0x1F645),  # grinning .. cat faces .. face with rolling eyes
    *range(0x1F648, 0x1F64B),  # see-, hear-, speak-no-evil monkeys
    0x263A,
    0x2639,  # smiling and frowning face (text-default: drawn with VS16)
    *range(0x1F31A, 0x1F31F),  # moon faces, sun with face
    0x1F383,  # jack-o-lantern
    *range(0x1F479, 0x1F47C),
    0x1F47D,
    0x1F47F,
    0x1F480,  # ogre, goblin, ghost, alien, imp, skull
    0x1F4A9,  # pile of poo
    *range(0x1F910, 0x1F918),  # zipper-mouth .. hugging face
    *range(0x1F920, 0x1F926),
    *range(0x1F927, 0x1F930),  # cowboy .. lying; sneezing .. exploding
    *range(0x1F970, 0x1F977),
    *range(0x1F978, 0x1F97B),  # hearts .. cold; disguised; pleading
    0x1F9D0,  # monocle
    *range(0x1FAE0, 0x1FAE6),
    0x1FAE8,  # melting .. dotted line; shaking
)
# People drawn as a head (or head and shoulders); each comes in every skin tone.
PEOPLE_HEADS: tuple[int, ...] = (
    0x1F385,  # Santa Claus
    *range(0x1F466, 0x1F46A),  # boy, girl, man, woman
    0x1F46E,  # police officer
    *range(0x1F470, 0x1F479),  # bride with veil .. princess
    0x1F47C,  # baby angel
    0x1F482,  # guard
    0x1F934,
    0x1F936,  # prince, Mrs. Claus
    0x1F977,  # ninja
    *range(0x1F9D1, 0x1F9D6),  # person, child, older person, beard, headscarf
    0x1FAC5,  # person with crown
)
ANIMAL_FACES: tuple[int, ...] = (
    0x1F428,  # koala
    *range(0x1F42D, 0x1F433),  # mouse, cow, tiger, rabbit, cat, dragon
    *range(0x1F434, 0x1F43D),  # horse, monkey, dog, pig, frog, hamster, wolf, bear, panda
    0x1F981,
    0x1F984,
    0x1F98A,
    0x1F99D,  # lion, unicorn, fox, raccoon
)
GROUPS: dict[str, tuple[int, ...]] = {"smiley": SMILEYS, "person": PEOPLE_HEADS, "animal": ANIMAL_FACES}


class FontNotFoundError(SphinxError, FileNotFoundError):
    """The Noto Color Emoji font is not installed."""


@dataclass(frozen=True)
class EmojiFace:
    """One face emoji to render.

    Attributes:
        codepoints: the sequence as code points, e.g. ``(0x1F466, 0x1F3FB)``.
        base: the code point the held-out split is decided by (skin tones share it).
        group: ``smiley``, ``person`` or ``animal``.
    """

    codepoints: tuple[int, ...]
    base: int
    group: str

    @property
    def text(self) -> str:
        return "".join(map(chr, self.codepoints))

    @property
    def key(self) -> str:
        """Code points as ``1f466-1f3fb``: the file stem and the index's ``codepoints`` field."""
        return "-".join(f"{cp:x}" for cp in self.codepoints)

    @property
    def name(self) -> str:
        names = [unicodedata.name(chr(cp), f"U+{cp:04X}") for cp in self.codepoints if cp != VARIATION_SELECTOR_16]
        return ": ".join(name.lower() for name in names)


def find_font(path: str | os.PathLike[str] | None = None) -> Path:
    """The Noto Color Emoji font file.

    Args:
        path: an explicit font file; None searches ``$SPHINX_EMOJI_FONT`` then the usual
            system locations.

    Raises:
        FontNotFoundError: no font file, with the places searched and how to install it.
    """
    if path is not None:
        searched = [Path(path)]
    else:
        configured = os.environ.get(FONT_ENV)
        searched = [Path(configured)] if configured else []
        searched += [Path(candidate) for candidate in FONT_CANDIDATES]
    for candidate in searched:
        if candidate.is_file():
            return candidate
    raise FontNotFoundError(
        f"Noto Color Emoji font not found (searched {', '.join(map(str, searched))}); install it with "
        f"`apt-get install fonts-noto-color-emoji` or set {FONT_ENV} to NotoColorEmoji.ttf"
    )


def face_emoji() -> list[EmojiFace]:
    """Every candidate face sequence, sorted by code points (base, then skin-tone variants)."""
    faces = []
    for group, bases in GROUPS.items():
        for base in bases:
            plain = (base, VARIATION_SELECTOR_16) if base < 0x2700 else (base,)
            faces.append(EmojiFace(plain, base, group))
            if group == "person":
                faces += [EmojiFace((base, tone), base, group) for tone in SKIN_TONES]
    if len({face.codepoints for face in faces}) != len(faces):
        raise AssertionError("duplicate code points in the face lists")
    return sorted(faces, key=lambda face: face.codepoints)


def held_out_bases(bases: Iterable[int]) -> set[int]:
    """Every tenth base code point in sorted order: the deterministic 10% evaluation split."""
    ordered = sorted(set(bases))
    return {cp for index, cp in enumerate(ordered) if index % HOLDOUT_EVERY == HOLDOUT_OFFSET}


class EmojiRenderer:
    """Draws emoji sequences with Pillow and recognizes glyphs the font does not have.

    Args:
        font_path: the Noto Color Emoji ``.ttf``.
        resolution: output side in pixels.
    """

    def __init__(self, font_path: str | os.PathLike[str], *, resolution: int = RESOLUTION) -> None:
        self.font = ImageFont.truetype(os.fspath(font_path), FONT_SIZE)
        self.resolution = resolution
        self._one_glyph_width = self.font.getlength("\U0001f600")
        # an unassigned code point shows the font's missing-glyph box ("tofu")
        self._tofu = self._draw_rgba("\U000e0fff")

    def _draw_rgba(self, text: str) -> Image.Image:
        left, top, right, bottom = self.font.getbbox(text)
        side = max(right - left, bottom - top)
        canvas = Image.new("RGBA", (side, side), (255, 255, 255, 0))
        draw = ImageDraw.Draw(canvas)
        # center the glyph's ink box on the square canvas
        origin = ((side - (right - left)) / 2 - left, (side - (bottom - top)) / 2 - top)
        draw.text(origin, text, font=self.font, embedded_color=True)
        return canvas

    def renders(self, text: str) -> bool:
        """Whether the font draws ``text`` as one real glyph (not blank, not tofu, not split)."""
        if abs(self.font.getlength(text) - self._one_glyph_width) > 0.5:
            return False  # a missing ligature lays out as two or more glyphs side by side
        rgba = self._draw_rgba(text)
        alpha = np.asarray(rgba)[..., 3]
        if alpha.max() == 0:
            return False
        return rgba.size != self._tofu.size or not np.array_equal(np.asarray(rgba), np.asarray(self._tofu))

    def render(self, text: str) -> Image.Image:
        """The emoji centered on white, Lanczos-resized to ``resolution``, as an RGB image."""
        rgba = self._draw_rgba(text)
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(white, rgba).convert("RGB")
        return rgb.resize((self.resolution, self.resolution), Image.Resampling.LANCZOS)


def prepare(
    out_dir: str | os.PathLike[str], *, font: str | os.PathLike[str] | None = None, resolution: int = RESOLUTION
) -> list[dict[str, str]]:
    """Render every face emoji the font has into ``out_dir`` and write ``index.csv``.

    Args:
        out_dir: folder for ``<codepoints>.png`` files and ``index.csv`` (created).
        font: the font file; None searches the usual places (see :func:`find_font`).
        resolution: image side in pixels.

    Returns:
        The index rows, in file order: ``file, codepoints, name, group, split``.

    Raises:
        FontNotFoundError: the font is not installed.
    """
    renderer = EmojiRenderer(find_font(font), resolution=resolution)
    kept = [face for face in face_emoji() if renderer.renders(face.text)]
    held_out = held_out_bases(face.base for face in kept)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for face in kept:
        file_name = f"{face.key}.png"
        renderer.render(face.text).save(out / file_name)
        rows.append(
            {
                "file": file_name,
                "codepoints": face.key,
                "name": face.name,
                "group": face.group,
                "split": "test" if face.base in held_out else "train",
            }
        )
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=["file", "codepoints", "name", "group", "split"], lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "index.csv", table.getvalue())
    return rows


def read_index(folder: str | os.PathLike[str], *, split: str | None = None) -> list[dict[str, str]]:
    """Rows of a prepared folder's ``index.csv``, optionally only one split (``train``/``test``)."""
    with open(Path(folder) / "index.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return rows if split is None else [row for row in rows if row["split"] == split]


def load_images(folder: str | os.PathLike[str], *, split: str | None = "train") -> torch.Tensor:
    """The images of a prepared folder as one tensor, in index order.

    Args:
        folder: a folder written by :func:`prepare` (any folder of RGB PNGs with such an
            ``index.csv`` works).
        split: ``train``, ``test``, or None for all rows.

    Returns:
        ``[N, 3, H, W]`` float32 in [-1, 1].

    Raises:
        ImageError: no index, no rows in the split, or images of different sizes.
    """
    index = Path(folder) / "index.csv"
    if not index.is_file():
        raise ImageError(f"{index} not found; prepare the data with `python -m sphinx.data.emoji --out {folder}`")
    rows = read_index(folder, split=split)
    if not rows:
        raise ImageError(f"{index} has no rows in split {split!r}")
    arrays = [np.asarray(Image.open(Path(folder) / row["file"]).convert("RGB")) for row in rows]
    shapes = {array.shape for array in arrays}
    if len(shapes) != 1:
        raise ImageError(f"{folder}: images of different sizes {sorted(shapes)}")
    stacked = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)  # [N, 3, H, W] uint8
    return stacked.float() / 127.5 - 1.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sphinx.data.emoji", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output folder (PNGs and index.csv)")
    parser.add_argument("--font", default=None, help="NotoColorEmoji.ttf (default: search system fonts)")
    parser.add_argument("--resolution", type=int, default=RESOLUTION)
    args = parser.parse_args(argv)
    try:
        rows = prepare(args.out, font=args.font, resolution=args.resolution)
    except FontNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    counts = {split: sum(row["split"] == split for row in rows) for split in ("train", "test")}
    print(f"wrote {len(rows)} emoji to {args.out} ({counts['train']} train, {counts['test']} test)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
