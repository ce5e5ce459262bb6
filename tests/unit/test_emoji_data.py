"""Face emoji data prep: code-point lists, the deterministic split, rendering and the missing-font error."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sphinx.data import emoji
from sphinx.errors import ImageError

try:
    FONT: Path | None = emoji.find_font()
except emoji.FontNotFoundError:
    FONT = None
needs_font = pytest.mark.skipif(FONT is None, reason="fonts-noto-color-emoji is not installed")


def test_candidates_are_sorted_unique_and_people_come_in_every_skin_tone() -> None:
    faces = emoji.face_emoji()
    keys = [face.codepoints for face in faces]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    people = [face for face in faces if face.group == "person"]
    for base in emoji.PEOPLE_HEADS:
        variants = {face.codepoints for face in people if face.base == base}
        assert variants == {(base,)} | {(base, tone) for tone in emoji.SKIN_TONES}
    assert all(len(face.codepoints) == 1 or face.codepoints[1] in (*emoji.SKIN_TONES, 0xFE0F) for face in faces)


def test_every_group_is_represented() -> None:
    groups = {face.group for face in emoji.face_emoji()}
    assert groups == {"smiley", "person", "animal"}
    assert 0x1F600 in emoji.SMILEYS and 0x1F436 in emoji.ANIMAL_FACES and 0x1F469 in emoji.PEOPLE_HEADS


def test_held_out_split_is_every_tenth_base_code_point() -> None:
    bases = list(range(100, 200))
    held_out = emoji.held_out_bases(reversed(bases))  # order of the input does not matter
    assert held_out == {100 + i for i in range(100) if i % 10 == emoji.HOLDOUT_OFFSET}
    assert len(held_out) == 10


def test_names_and_keys_are_readable() -> None:
    face = emoji.EmojiFace((0x1F466, 0x1F3FB), 0x1F466, "person")
    assert face.key == "1f466-1f3fb"
    assert face.name == "boy: emoji modifier fitzpatrick type-1-2"
    assert emoji.EmojiFace((0x263A, 0xFE0F), 0x263A, "smiley").name == "white smiling face"


def test_missing_font_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    missing = tmp_path / "NotoColorEmoji.ttf"
    with pytest.raises(emoji.FontNotFoundError, match="apt-get install fonts-noto-color-emoji") as error:
        emoji.find_font(missing)
    assert str(missing) in str(error.value) and "\n" not in str(error.value)
    monkeypatch.setattr(emoji, "FONT_CANDIDATES", (str(tmp_path / "nowhere.ttf"),))
    monkeypatch.delenv(emoji.FONT_ENV, raising=False)
    assert emoji.main(["--out", str(tmp_path / "out")]) == 2
    message = capsys.readouterr().err
    assert "apt-get install fonts-noto-color-emoji" in message and "nowhere.ttf" in message
    assert not (tmp_path / "out").exists()


def test_load_images_refuses_a_folder_without_index(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="python -m sphinx.data.emoji"):
        emoji.load_images(tmp_path)


@needs_font
def test_renderer_rejects_missing_glyphs_and_broken_sequences() -> None:
    renderer = emoji.EmojiRenderer(FONT)
    assert renderer.renders("\U0001f600")
    assert renderer.renders("\U0001f469\U0001f3fd")  # skin tones are one ligature glyph
    assert not renderer.renders("\U000e0fff")  # unassigned: the missing-glyph box
    assert not renderer.renders("\U0001f600\U0001f600")  # two glyphs
    assert not renderer.renders(" ")  # blank


@needs_font
def test_prepare_writes_white_64px_pngs_an_index_and_is_reproducible(tmp_path: Path) -> None:
    rows = emoji.prepare(tmp_path / "a", font=FONT)
    again = emoji.prepare(tmp_path / "b", font=FONT)
    assert rows == again
    digest = lambda folder: hashlib.sha256(
        b"".join(  # noqa: E731
            (folder / row["file"]).read_bytes() for row in rows
        )
    ).hexdigest()
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert len(rows) > 250
    assert [row["codepoints"] for row in rows] == sorted(
        (row["codepoints"] for row in rows), key=lambda key: [int(part, 16) for part in key.split("-")]
    )
    assert emoji.read_index(tmp_path / "a") == rows

    image = np.asarray(Image.open(tmp_path / "a" / "1f600.png"))
    assert image.shape == (64, 64, 3)
    assert (image[0, 0] == 255).all() and (image[32, 32] != 255).any()  # white corner, inked center

    # split by base code point: all skin tones of a person share one side
    split_of: dict[str, set[str]] = {}
    for row in rows:
        split_of.setdefault(row["codepoints"].split("-")[0], set()).add(row["split"])
    assert all(len(splits) == 1 for splits in split_of.values())
    held_out = sum(splits == {"test"} for splits in split_of.values())
    assert held_out == len(split_of) // 10 or held_out == len(split_of) // 10 + 1

    train = emoji.load_images(tmp_path / "a", split="train")
    test = emoji.load_images(tmp_path / "a", split="test")
    assert train.shape[1:] == (3, 64, 64) and train.shape[0] + test.shape[0] == len(rows)
    assert train.dtype == torch.float32 and train.min() >= -1 and train.max() <= 1
