"""The data layer: any common image file becomes a [3, R, R] float32 tensor in [-1, 1]; bad files
become per-image failures, bad options a ConfigError before any compute."""

from __future__ import annotations

import hashlib
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.probe import run_probe
from sphinx.data import (
    FITS,
    SAMPLE_NAMES,
    BundledSamples,
    ImageFolder,
    ImageItem,
    collate_items,
    convert_image,
    image_id_from_text,
    image_id_to_filename,
    image_id_to_text,
    load_image,
    load_sample_pixels,
    save_image,
    to_uint8,
)
from sphinx.errors import ConfigError, ImageError
from sphinx.utils.seeding import stream_seed

WHITE = 1.0
EIGHT_BIT_STEP = 2.0 / 255.0  # one 8-bit level, in [-1, 1] units


def expected(values_0_255: np.ndarray | float) -> torch.Tensor | float:
    """8-bit levels to the [-1, 1] values a loader must give."""
    if isinstance(values_0_255, np.ndarray):
        return torch.from_numpy(values_0_255.astype(np.float64) / 255.0 * 2.0 - 1.0).float()
    return values_0_255 / 255.0 * 2.0 - 1.0


def assert_image_tensor(tensor: torch.Tensor, resolution: int) -> None:
    assert tensor.shape == (3, resolution, resolution)
    assert tensor.dtype == torch.float32
    assert torch.isfinite(tensor).all()
    assert tensor.min() >= -1.0 and tensor.max() <= 1.0


def pillow_mode(path: Path) -> str:
    with Image.open(path) as image:
        return image.mode


def write_png16(path: Path, pixels: np.ndarray) -> None:
    """Writes a 16-bit PNG (gray, gray+alpha, RGB or RGBA) from uint16 [H, W(, C)].

    Pillow cannot write 16-bit colour PNGs, so the chunks are assembled here (PNG spec, filter 0).
    """
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    big_endian = pixels.astype(">u2").reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in big_endian)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


# ---------------------------------------------------------------- conversions


def test_grayscale_is_repeated_to_three_equal_channels(tmp_path):
    levels = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(levels).save(tmp_path / "gray.png")
    assert pillow_mode(tmp_path / "gray.png") == "L"
    image = load_image(tmp_path / "gray.png", resolution=8)
    assert_image_tensor(image, 8)
    for channel in image:
        torch.testing.assert_close(channel, expected(levels), atol=1e-6, rtol=0)


def test_one_bit_image_is_black_and_white(tmp_path):
    pixels = np.zeros((8, 8), dtype=bool)
    pixels[:, 4:] = True
    Image.fromarray(pixels).save(tmp_path / "bits.png")
    image = load_image(tmp_path / "bits.png", resolution=8)
    assert (image[:, :, :4] == -1).all() and (image[:, :, 4:] == 1).all()


def test_rgba_transparent_pixels_become_white_and_alpha_blends(tmp_path):
    pixels = np.zeros((4, 4, 4), dtype=np.uint8)
    pixels[..., 0] = 200  # a red that must not show where transparent
    pixels[0, 0, 3] = 0  # transparent
    pixels[0, 1, 3] = 255  # opaque
    pixels[0, 2, 3] = 128  # half
    Image.fromarray(pixels, "RGBA").save(tmp_path / "rgba.png")
    image = load_image(tmp_path / "rgba.png", resolution=4)
    torch.testing.assert_close(image[:, 0, 0], torch.full((3,), WHITE))
    torch.testing.assert_close(image[:, 0, 1], torch.tensor([expected(200), -1.0, -1.0]))
    alpha = 128 / 255
    blended = torch.tensor([200 * alpha + 255 * (1 - alpha), 255 * (1 - alpha), 255 * (1 - alpha)])
    torch.testing.assert_close(image[:, 0, 2], blended / 255 * 2 - 1, atol=1e-5, rtol=0)


def test_palette_image_expands_colours_and_its_transparent_index_becomes_white(tmp_path):
    indices = np.array([[0, 1], [2, 2]], dtype=np.uint8)
    palette_image = Image.fromarray(indices, "P")
    palette_image.putpalette([10, 20, 30, 200, 100, 0, 0, 0, 255] + [0] * (256 - 3) * 3)
    palette_image.save(tmp_path / "palette.png", transparency=2)
    assert pillow_mode(tmp_path / "palette.png") == "P"
    image = load_image(tmp_path / "palette.png", resolution=2)
    torch.testing.assert_close(image[:, 0, 0], expected(np.array([10, 20, 30])))
    torch.testing.assert_close(image[:, 0, 1], expected(np.array([200, 100, 0])))
    torch.testing.assert_close(image[:, 1, :], torch.full((3, 2), WHITE))


def test_sixteen_bit_grayscale_png_keeps_its_range_and_precision(tmp_path):
    ramp = np.linspace(0, 65535, 32 * 32).round().astype(np.uint16).reshape(32, 32)
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    assert pillow_mode(tmp_path / "ramp16.png").startswith("I")  # 16 bits on disk and in Pillow
    image = load_image(tmp_path / "ramp16.png", resolution=32)
    assert_image_tensor(image, 32)
    want = torch.from_numpy(ramp / 65535.0 * 2.0 - 1.0).float()
    for channel in image:
        torch.testing.assert_close(channel, want, atol=1e-6, rtol=0)
    # a naive convert("L") clips everything above 255 / 65535 to white and has 256 levels at most
    assert image[0].median() < 0.1
    assert image[0].unique().numel() > 256


def test_sixteen_bit_rgb_png_loads_with_its_colours(tmp_path):
    ramp = np.linspace(0, 65535, 16 * 16).round().astype(np.uint16).reshape(16, 16)
    pixels = np.stack([ramp, ramp[::-1, ::-1], np.full_like(ramp, 30000)], axis=2)
    write_png16(tmp_path / "rgb16.png", pixels)
    image = load_image(tmp_path / "rgb16.png", resolution=16)
    assert_image_tensor(image, 16)
    want = torch.from_numpy(pixels / 65535.0 * 2.0 - 1.0).float().permute(2, 0, 1)
    # Pillow 13 decodes 16-bit colour PNGs to 8 bits: within one 8-bit level
    torch.testing.assert_close(image, want, atol=EIGHT_BIT_STEP, rtol=0)


def test_sixteen_bit_rgba_png_composites_onto_white(tmp_path):
    pixels = np.zeros((4, 4, 4), dtype=np.uint16)
    pixels[..., 3] = 65535
    pixels[0, 0, 3] = 0
    write_png16(tmp_path / "rgba16.png", pixels)
    image = load_image(tmp_path / "rgba16.png", resolution=4)
    torch.testing.assert_close(image[:, 0, 0], torch.full((3,), WHITE))
    assert (image[:, 1:, :] == -1).all()


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    pixels = np.zeros((16, 16, 3), dtype=np.uint8)
    pixels[:, :8] = (255, 0, 0)
    pixels[:, 8:] = (0, 0, 255)
    Image.fromarray(pixels).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    assert pillow_mode(tmp_path / "cmyk.jpg") == "CMYK"
    image = load_image(tmp_path / "cmyk.jpg", resolution=16)
    red, blue = image[:, :, 1:6].mean(dim=(1, 2)), image[:, :, 10:15].mean(dim=(1, 2))
    torch.testing.assert_close(red, torch.tensor([1.0, -1.0, -1.0]), atol=0.1, rtol=0)
    torch.testing.assert_close(blue, torch.tensor([-1.0, -1.0, 1.0]), atol=0.1, rtol=0)


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((20, 40), dtype=np.uint8)  # 40 wide, 20 tall
    stored[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": the left half ends up on top
    Image.fromarray(stored).save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=100)
    image = load_image(tmp_path / "rotated.jpg", resolution=20)  # upright 20x40, centre crop
    assert image[:, :8].mean() > 0.9, "top should be white once rotated"
    assert image[:, 12:].mean() < -0.9, "bottom should be black once rotated"


def test_crop_keeps_the_centre_of_a_non_square_image():
    pixels = np.full((20, 60), 128, dtype=np.uint8)  # 60 wide
    pixels[:, :20] = 0
    pixels[:, 40:] = 255
    image = convert_image(pixels, resolution=20, fit="crop")
    torch.testing.assert_close(image, torch.full((3, 20, 20), expected(128)))


def test_pad_centres_the_whole_image_on_white():
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)  # 40 wide: white bands above and below
    image = convert_image(pixels, resolution=40, fit="pad")
    assert (image[:, :10] == WHITE).all() and (image[:, 30:] == WHITE).all()
    assert (image[:, 10:30] == -1).all()
    tall = convert_image(np.zeros((40, 20), dtype=np.uint8), resolution=40, fit="pad")
    assert (tall[:, :, :10] == WHITE).all() and (tall[:, :, 10:30] == -1).all()


def test_resize_gives_the_requested_resolution_in_range():
    rng = np.random.default_rng(0)
    pixels = (rng.random((90, 130, 3)) > 0.5).astype(np.uint8) * 255  # sharp edges: Lanczos overshoots
    for fit in FITS:
        for resolution in (1, 17, 64, 200):
            assert_image_tensor(convert_image(pixels, resolution=resolution, fit=fit), resolution)


def test_arrays_of_each_supported_dtype_map_to_the_same_image():
    levels = np.array([[0, 51], [204, 255]], dtype=np.uint8)
    from_uint8 = convert_image(levels, resolution=2)
    torch.testing.assert_close(convert_image(levels.astype(np.uint16) * 257, resolution=2), from_uint8)
    torch.testing.assert_close(convert_image(levels / 255.0, resolution=2), from_uint8)
    torch.testing.assert_close(convert_image(levels[..., None].repeat(3, axis=2), resolution=2), from_uint8)


@pytest.mark.parametrize(
    "bad",
    [
        np.full((4, 4), 1.5),  # float outside [0, 1]
        np.full((4, 4), np.nan),
        np.zeros((4, 4), dtype=np.int64),
        np.zeros((4, 4, 5), dtype=np.uint8),
        np.zeros((0, 4), dtype=np.uint8),
    ],
)
def test_arrays_that_are_not_images_are_refused(bad):
    with pytest.raises(ImageError, match="target.png: cannot read image"):
        convert_image(bad, resolution=4, name="target.png")


def test_float_and_32_bit_pillow_images_use_unit_and_16_bit_ranges():
    as_float = convert_image(Image.fromarray(np.full((4, 4), 0.25, dtype=np.float32)), resolution=4)
    torch.testing.assert_close(as_float, torch.full((3, 4, 4), -0.5))
    as_int = convert_image(Image.fromarray(np.full((4, 4), 65535, dtype=np.int32)), resolution=4)
    torch.testing.assert_close(as_int, torch.full((3, 4, 4), 1.0))


def test_float_pillow_image_outside_unit_range_is_refused():
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        convert_image(Image.fromarray(np.full((4, 4), 255.0, dtype=np.float32)), resolution=4)


@pytest.mark.parametrize("resolution", [0, -8, 2.5, True, "64"])
def test_bad_resolution_is_a_config_error(resolution):
    with pytest.raises(ConfigError, match="resolution"):
        convert_image(np.zeros((4, 4), dtype=np.uint8), resolution=resolution)


def test_unknown_fit_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="crop, pad"):
        convert_image(np.zeros((4, 4), dtype=np.uint8), resolution=4, fit="stretch")
    with pytest.raises(ConfigError, match="crop, pad"):
        ImageFolder(tmp_path, resolution=4, fit="stretch")


# ---------------------------------------------------------------- writing


def test_save_then_load_round_trips_within_eight_bit_quantization(tmp_path):
    tensor = torch.rand(3, 16, 16) * 2 - 1
    path = save_image(tensor.unsqueeze(0), tmp_path / "out.png")
    assert path == tmp_path / "out.png"
    with Image.open(path) as written:
        assert written.mode == "RGB" and written.size == (16, 16)
    loaded = load_image(path, resolution=16)
    assert (loaded - tensor).abs().max() <= EIGHT_BIT_STEP / 2 + 1e-6
    # and an image read from 8 bits comes back exactly
    assert torch.equal(load_image(save_image(loaded, tmp_path / "again.png"), resolution=16), loaded)


def test_to_uint8_rounds_and_clamps():
    tensor = torch.tensor([-3.0, -1.0, expected(100) + 0.4 * EIGHT_BIT_STEP, 0.0, 1.0, 7.0])
    pixels = to_uint8(tensor.view(1, 1, 6).expand(3, 1, 6))
    assert pixels.shape == (1, 6, 3) and pixels.dtype == np.uint8
    assert pixels[0, :, 0].tolist() == [0, 0, 100, 128, 255, 255]


def test_to_uint8_refuses_what_is_not_an_image():
    with pytest.raises(ImageError, match="NaN"):
        to_uint8(torch.full((3, 2, 2), float("nan")))
    with pytest.raises(ImageError, match=r"\[3, H, W\]"):
        to_uint8(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ImageError, match="float"):
        to_uint8(torch.zeros(3, 4, 4, dtype=torch.uint8))


def test_save_image_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "nested" / "out.png"
    save_image(torch.zeros(3, 8, 8), target)
    assert sorted(path.name for path in target.parent.iterdir()) == ["out.png"]  # no temp file left
    before = target.read_bytes()

    def fail_midway(self, file, *args, **kwargs):
        file.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        save_image(torch.ones(3, 8, 8), target)
    assert target.read_bytes() == before, "a failed write must leave the previous file intact"
    assert sorted(path.name for path in target.parent.iterdir()) == ["out.png"]


def test_save_image_refuses_other_formats(tmp_path):
    with pytest.raises(ImageError, match=".png"):
        save_image(torch.zeros(3, 4, 4), tmp_path / "out.jpg")


# ---------------------------------------------------------------- folders


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    """One corrupt PNG, one text file named .jpg, one grayscale and one RGB image, plus noise."""
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "b_corrupt.png").write_bytes(np.random.default_rng(0).bytes(500))
    (folder / "c_notes.jpg").write_text("these are notes, not a picture\n")
    Image.fromarray(np.full((10, 30), 77, dtype=np.uint8)).save(folder / "a_gray.png")
    Image.fromarray(np.full((30, 10, 3), (255, 0, 0), dtype=np.uint8)).save(folder / "d_rgb.PNG")
    (folder / "readme.txt").write_text("ignored")
    return folder


def test_folder_yields_images_and_per_file_errors(mixed_folder):
    dataset = ImageFolder(mixed_folder, resolution=8)
    assert len(dataset) == 4
    assert dataset.skipped == 1
    assert dataset.ids == ("a_gray.png", "b_corrupt.png", "c_notes.jpg", "d_rgb.PNG")
    items = [dataset[index] for index in range(len(dataset))]
    assert [item.id for item in items] == list(dataset.ids)
    gray, corrupt, notes, rgb = items
    torch.testing.assert_close(gray.image, torch.full((3, 8, 8), expected(77)))
    torch.testing.assert_close(rgb.image[:, 4, 4], torch.tensor([1.0, -1.0, -1.0]))
    for bad, file_name in ((corrupt, "b_corrupt.png"), (notes, "c_notes.jpg")):
        assert bad.image is None
        assert re.fullmatch(rf".*{re.escape(file_name)}: cannot read image \(.+\)", bad.error)
        assert "\n" not in bad.error

    batch = collate_items(items, resolution=8)
    assert batch["ids"] == ["a_gray.png", "d_rgb.PNG"]
    assert batch["images"].shape == (2, 3, 8, 8)
    torch.testing.assert_close(batch["images"][1], rgb.image)
    assert [image_id for image_id, _ in batch["failures"]] == ["b_corrupt.png", "c_notes.jpg"]
    assert batch["failures"][0][1] == corrupt.error


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_file_is_a_failure_not_a_partial_image(tmp_path, suffix):
    full, truncated = tmp_path / f"full{suffix}", tmp_path / f"truncated{suffix}"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(full)
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(ImageError, match=re.escape(str(truncated)) + r": cannot read image \(.*truncated"):
        load_image(truncated, resolution=8)


def test_folder_works_through_a_data_loader(mixed_folder):
    dataset = ImageFolder(mixed_folder, resolution=8)
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, collate_fn=collate_items)
    batches = list(loader)
    assert [batch["ids"] for batch in batches] == [["a_gray.png"], ["d_rgb.PNG"]]
    assert [len(batch["failures"]) for batch in batches] == [2, 0]


def test_batch_of_only_failures_has_an_empty_image_tensor():
    items = [ImageItem("x.png", None, "x.png: cannot read image (broken)")]
    batch = collate_items(items, resolution=16)
    assert batch["ids"] == [] and batch["images"].shape == (0, 3, 16, 16)
    assert batch["failures"] == [("x.png", "x.png: cannot read image (broken)")]


def test_collate_refuses_images_of_different_sizes():
    items = [ImageItem("a", torch.zeros(3, 8, 8), None), ImageItem("b", torch.zeros(3, 4, 4), None)]
    with pytest.raises(ImageError, match="different shapes"):
        collate_items(items)


def test_image_item_holds_an_image_or_an_error():
    with pytest.raises(ValueError):
        ImageItem("a", None, None)
    with pytest.raises(ValueError):
        ImageItem("a", torch.zeros(3, 4, 4), "also an error")
    with pytest.raises(ValueError):
        ImageItem("a", None, "two\nlines")


def test_folder_lists_sub_folders_with_posix_ids_and_skips_hidden_files(tmp_path):
    for relative in ("z.png", "sub/b.jpg", "sub/deeper/a.webp", ".hidden.png", ".cache/c.png", "sub/._b.jpg"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp_path / relative, format="PNG")
    dataset = ImageFolder(tmp_path, resolution=4)
    assert dataset.ids == ("sub/b.jpg", "sub/deeper/a.webp", "z.png")
    assert dataset.skipped == 2  # the two hidden files; the hidden folder is not entered
    assert ImageFolder(tmp_path, resolution=4, recursive=False).ids == ("z.png",)


def test_limit_keeps_the_first_images_in_sorted_order(mixed_folder):
    assert ImageFolder(mixed_folder, resolution=4, limit=2).ids == ("a_gray.png", "b_corrupt.png")
    assert len(ImageFolder(mixed_folder, resolution=4, limit=100)) == 4


@pytest.mark.parametrize("limit", [0, -1, 1.5, True])
def test_bad_limit_is_a_config_error_naming_the_folder(mixed_folder, limit):
    with pytest.raises(ConfigError, match=re.escape(str(mixed_folder))):
        ImageFolder(mixed_folder, resolution=4, limit=limit)


def test_missing_folder_is_a_config_error_naming_it(tmp_path):
    missing = tmp_path / "no_such_folder"
    with pytest.raises(ConfigError, match=re.escape(str(missing)) + ".*data.path"):
        ImageFolder(missing, resolution=4)


def test_a_file_is_not_a_folder(tmp_path):
    file = tmp_path / "one.png"
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(file)
    with pytest.raises(ConfigError, match=re.escape(str(file)) + " is not a folder"):
        ImageFolder(file, resolution=4)


def test_folder_without_images_is_a_config_error_naming_it_and_the_extensions(tmp_path):
    (tmp_path / "notes.txt").write_text("no pictures here")
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path)) + ".*png, jpg, jpeg.*webp") as error:
        ImageFolder(tmp_path, resolution=4)
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------- bundled samples


@pytest.fixture(scope="module")
def samples() -> list[ImageItem]:
    dataset = BundledSamples(resolution=32)
    return [dataset[index] for index in range(len(dataset))]


def test_bundled_samples_in_fixed_order_all_readable(samples):
    assert SAMPLE_NAMES == (
        "astronaut",
        "chelsea",
        "coffee",
        "retina",
        "camera",
        "immunohistochemistry",
        "hubble_deep_field",
    )
    assert [item.id for item in samples] == list(SAMPLE_NAMES)
    for item in samples:
        assert item.error is None, item.error
        assert_image_tensor(item.image, 32)
    assert len({item.image.sum().item() for item in samples}) == len(samples), "each sample is different"


def test_bundled_camera_is_grayscale(samples):
    camera = dict((item.id, item.image) for item in samples)["camera"]
    assert torch.equal(camera[0], camera[1]) and torch.equal(camera[1], camera[2])


def test_bundled_astronaut_is_a_crop_of_her_face(samples):
    import skimage.data

    astronaut = dict((item.id, item.image) for item in samples)["astronaut"]
    whole = convert_image(skimage.data.astronaut(), resolution=32)
    assert (astronaut - whole).abs().mean() > 0.2, "the sample must be a face crop, not the whole photo"
    # the face fills the centre: skin tones, red over green over blue
    red, green, blue = astronaut[:, 12:20, 12:20].mean(dim=(1, 2))
    assert red > green > blue and red > 0.2
    pixels = load_sample_pixels("astronaut")
    assert pixels.shape[0] == pixels.shape[1] and pixels.shape[0] < 512


def test_bundled_chelsea_is_a_square_crop_of_the_cat():
    pixels = load_sample_pixels("chelsea")
    assert pixels.shape[0] == pixels.shape[1] == 300


def test_bundled_subset_keeps_the_given_order_and_limit():
    dataset = BundledSamples(resolution=8, names=["camera", "astronaut"])
    assert dataset.ids == ("camera", "astronaut")
    assert dataset[0].id == "camera" and dataset[0].image.shape == (3, 8, 8)
    assert BundledSamples(resolution=8, limit=3).ids == SAMPLE_NAMES[:3]


@pytest.mark.parametrize("names", [["astronaut", "lena"], ["camera", "camera"], [], "camera"])
def test_bundled_bad_names_are_config_errors(names):
    with pytest.raises(ConfigError) as error:
        BundledSamples(resolution=8, names=names)
    if "lena" in names:
        assert "'lena'" in str(error.value) and all(name in str(error.value) for name in SAMPLE_NAMES)


# ---------------------------------------------------------------- output names


def test_image_ids_become_safe_distinct_file_stems():
    ids = [
        "sub/a b.png",
        "sub__a_b",
        "sub/a_b.png",
        "a.png",
        "a.jpg",
        "a",
        "A",
        "a/b",
        "a__b",
        "../../etc/passwd",
        ".hidden",
        'weird:*?<>|"name.tif',
        "ünïcode.png",
        "bad\udcffbytes.png",  # a file name that is not UTF-8, as os.listdir gives it
        "x" * 300,
        "x" * 301,
    ]
    stems = [image_id_to_filename(image_id) for image_id in ids]
    for stem in stems:
        assert re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", stem), stem
        assert len(stem) <= 100
    assert len(set(stems)) == len(ids)
    assert image_id_to_filename("astronaut") == "astronaut"  # a safe id is kept as it is
    assert image_id_to_filename("sub/a b.png").startswith("sub__a_b-")
    assert image_id_to_filename("sub/a b.png") == image_id_to_filename("sub/a b.png")  # stable


# A file name may hold any byte but "/" and NUL; os.listdir gives the bytes that are not UTF-8 as lone
# surrogates (0xE9 alone, a Latin-1 "é", is "\udce9").
ODD_NAMES = [
    "caf\udce9.png",
    "a\nb.png",
    "c\rd.png",
    "tab\there.png",
    "bell\x07.png",
    "next\x85line.png",  # U+0085, a C1 control, not the byte 0x85
    "para\u2029graph.png",
    "back\\slash.png",
    "back\\nslash.png",  # a backslash and an n, not a newline
    " spaced .png",
    'comma, "quote".png',
    "sub/caf\u00e9.png",  # UTF-8 is kept as it is
]


def test_every_image_id_has_a_one_line_text_form_that_reads_back_exactly():
    texts = [image_id_to_text(image_id) for image_id in ODD_NAMES]
    for text in texts:
        text.encode("utf-8")  # strict: a table is UTF-8
        assert text.isprintable(), repr(text)
        assert len(text.splitlines()) == 1
    assert [image_id_from_text(text) for text in texts] == ODD_NAMES
    assert len(set(texts)) == len(ODD_NAMES)
    assert texts[:3] == ["caf\\xe9.png", "a\\nb.png", "c\\rd.png"]  # as `ls -b` shows them
    assert texts[7:9] == ["back\\\\slash.png", "back\\\\nslash.png"]
    for plain in ("astronaut", "sub/a b.png", "sub/caf\u00e9.png", 'comma, "quote".png'):
        assert image_id_to_text(plain) == plain
    with pytest.raises(ValueError, match="not the text form of an image id"):
        image_id_from_text("lone\\")


def test_every_file_name_gets_its_own_seeds_and_utf8_names_keep_theirs():
    # the seeds every run so far drew for a UTF-8 id: sha256 of "seed/id/stream"
    digest = hashlib.sha256("0/caf\u00e9.png/style_head".encode()).digest()
    assert stream_seed(0, "caf\u00e9.png", "style_head") == int.from_bytes(digest[:8], "little") & (2**63 - 1)
    seeds = {stream_seed(0, image_id, "style_head") for image_id in ODD_NAMES}
    assert len(seeds) == len(ODD_NAMES)


def test_an_unreadable_file_with_a_name_that_is_not_utf8_is_one_printable_line(tmp_path):
    (tmp_path / "caf\udce9.png").write_bytes(b"not an image")
    item = ImageFolder(tmp_path, resolution=4)[0]
    assert item.id == "caf\udce9.png" and item.image is None
    assert item.error.endswith("caf\\xe9.png: cannot read image (not an image format Pillow recognises)")
    item.error.encode("utf-8")


# ---------------------------------------------------------------- layering


@pytest.mark.slow  # a subprocess of the entry point: ~10 s of CPU to import alone
def test_data_layer_imports_without_the_framework():
    blocked = ["pytorch_lightning", "lightning", "lightning_fabric", "hydra", "omegaconf", "wandb"]
    code = (
        "import sys\n"
        f"for name in {blocked!r}:\n"
        "    sys.modules[name] = None\n"
        "import sphinx.data\n"
        "print(len(sphinx.data.BundledSamples(resolution=4, names=['camera'])[0].image))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"


def test_an_unreadable_file_whose_name_holds_a_newline_is_isolated_in_one_line(tmp_path):
    from sphinx.data.datasets import ImageFolder

    (tmp_path / "bad\nname.png").write_bytes(b"not an image")
    (tmp_path / "good.png").write_bytes(b"")  # also unreadable, for company
    dataset = ImageFolder(tmp_path, resolution=8)
    item = dataset[dataset.ids.index("bad\nname.png")]
    assert item.image is None and "\n" not in item.error and "bad\\nname.png" in item.error


def test_the_bundled_samples_come_as_one_batch_in_their_order():
    images, ids = BundledSamples(resolution=32, names=["coffee", "astronaut"]).batch()
    assert ids == ["coffee", "astronaut"] and images.shape == (2, 3, 32, 32)
    assert images.min() >= -1 and images.max() <= 1


# --- shards: one folder, many jobs ------------------------------------------------------------


def test_shards_partition_the_images_and_adding_images_moves_none_already_placed():
    from sphinx.data.datasets import select_shard

    ids = [f"img_{i:03d}.png" for i in range(200)]
    shards = [select_shard(ids, shard, 4) for shard in range(4)]
    assert sorted(sum(shards, ())) == ids and sum(map(len, shards)) == len(ids)  # each image exactly once
    assert all(30 <= len(shard) <= 70 for shard in shards)  # a hash spreads them
    grown = [select_shard([*ids, *(f"new_{i}.png" for i in range(50))], shard, 4) for shard in range(4)]
    assert all(set(old) <= set(new) for old, new in zip(shards, grown))
    assert select_shard(ids, 0, 1) == tuple(ids)


@pytest.mark.parametrize(
    "shard, num_shards, message",
    [
        (2, 2, "data.shard must be below data.num_shards=2"),
        (0, 0, "data.num_shards must be an integer >= 1"),
        (-1, 2, "data.shard must be an integer >= 0"),
        ("1", 2, "data.shard must be an integer"),
    ],
)
def test_impossible_shards_are_refused_in_one_line(shard, num_shards, message):
    from sphinx.data.datasets import select_shard

    with pytest.raises(ConfigError, match=message):
        select_shard(["a.png"], shard, num_shards)


def test_a_fifo_named_like_an_image_fails_as_that_image_without_blocking_the_others(tmp_path):
    from sphinx.data.datasets import ImageFolder

    os.mkfifo(tmp_path / "pipe.png")
    Image.new("RGB", (16, 16), (200, 10, 10)).save(tmp_path / "red.png")
    dataset = ImageFolder(tmp_path, resolution=8)
    items = {dataset.ids[i]: dataset[i] for i in range(len(dataset))}  # would block for ever on main
    assert items["pipe.png"].image is None and "not a regular file" in items["pipe.png"].error
    assert items["red.png"].image is not None


def _peak_loading(path: Path, resolution: int) -> dict:
    """Load ``path`` in a fresh process; its outcome and peak resident memory in MB."""
    probe = (
        "import json\n"
        "from sphinx.data import load_image\n"
        "from sphinx.errors import ImageError\n"
        f"try:\n    outcome = list(load_image({str(path)!r}, resolution={resolution}).shape)\n"
        "except ImageError as error:\n    outcome = str(error)\n"
        "print(json.dumps({'outcome': outcome, 'peak_mb': peak_mb()}))"
    )
    return run_probe(probe, cwd=Path.cwd(), timeout=300)


@pytest.mark.slow
def test_huge_images_load_in_bounded_memory_or_are_refused_from_their_header(tmp_path):
    # 12000 x 12000: a few hundred KB of PNG that Pillow alone would decode (it stops at 179 MP)
    Image.new("L", (12000, 12000), 128).save(tmp_path / "huge.png")
    refused = _peak_loading(tmp_path / "huge.png", 64)
    assert "144 megapixels, more than the 100 decoded here; downscale it" in refused["outcome"]
    assert refused["peak_mb"] < 1024, refused
    # 7000 x 6000 RGBA (a 42-megapixel photo): shrunk in 8-bit before any float copy
    photo = np.zeros((6000, 7000, 4), dtype=np.uint8)
    photo[..., 0], photo[..., 3] = 255, 255
    Image.fromarray(photo).save(tmp_path / "photo.png")
    del photo
    loaded = _peak_loading(tmp_path / "photo.png", 64)
    assert loaded["outcome"] == [3, 64, 64] and loaded["peak_mb"] < 1024, loaded


def test_a_shrunk_image_matches_the_same_image_loaded_at_full_size():
    from sphinx.data.images import _shrunk

    y, x = np.mgrid[0:4100, 0:4100] / 4100  # 16.8 MP: just over the threshold
    smooth = np.stack([np.sin(6 * x), np.cos(5 * y), np.sin(4 * (x + y))], axis=-1)  # [H, W, 3]
    pixels = ((smooth + 1) * 127.5).astype(np.uint8)
    full = convert_image(pixels, resolution=64)
    shrunk = convert_image(_shrunk(Image.fromarray(pixels), 64), resolution=64)
    assert (full - shrunk).abs().max() < 0.01  # measured 0.0048 (under 1 level of 8 bits is 0.0078)
