"""Image files and arrays to ``[3, R, R]`` float tensors in [-1, 1], and tensors back to PNG files.

This is the only place where pixels change representation: everything after it works on NCHW
float in [-1, 1], and everything written goes through :func:`save_image`.

Conversion rules (:func:`convert_image`):

- EXIF orientation is applied, so a phone photo is upright.
- Grayscale (``1``, ``L``, ``I;16``, ``I``, ``F``) stays one channel until the end, then is
  repeated to RGB. Palette images are expanded. CMYK and YCbCr use Pillow's conversion to RGB
  (no colour management).
- 16-bit images keep their precision: ``I;16`` and ``I`` are divided by 65535, not clipped to
  8 bits. ``I`` must hold values in [0, 65535] (the 16-bit data Pillow promotes to ``I``) and
  ``F`` values in [0, 1]; anything else is refused rather than guessed. Pillow 13 reads a 16-bit
  RGB(A) PNG as 8-bit ``RGB(A)`` (the high byte), which is converted like any 8-bit image.
- Transparency (an alpha channel, or a palette or ``tRNS`` transparent colour) is composited
  onto white: a transparent pixel has no colour, and white is the background faces are shown on.
- Non-square images: ``fit="crop"`` keeps the centred square of side ``min(H, W)``;
  ``fit="pad"`` keeps the whole image, centred on a white square of side ``max(H, W)``.
- Then a Lanczos resize (Pillow, antialiased when reducing) to ``resolution``, in float32 per
  channel so 16-bit inputs are not quantized, clamped to [0, 1] against Lanczos overshoot, and
  mapped to [-1, 1].
- Only regular files are read. An image over 100 megapixels is refused from its header; one
  over 16 megapixels is first box-filtered by an integer factor (keeping at least twice
  ``resolution`` on its short side), so no float copy of a huge image is ever made.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from sphinx.errors import ConfigError, ImageError
from sphinx.utils.files import atomic_open
from sphinx.utils.text import one_line

FITS = ("crop", "pad")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")

# white, in [0, 1]: the colour of padding and of transparent pixels
BACKGROUND = 1.0
SIXTEEN_BIT_MAX = 65535.0
# Decoding alone takes up to 4 bytes a pixel: above this an image is refused from its header.
MAX_PIXELS = 100_000_000
# Above this, an image is first shrunk by an integer box filter (see _shrunk).
SHRINK_ABOVE_PIXELS = 16_000_000

_GRAY_MODES = ("1", "L")
_GRAY_ALPHA_MODES = ("LA", "La")
_COLOR_MODES = ("RGB", "RGBX", "CMYK", "YCbCr", "P")
_COLOR_ALPHA_MODES = ("RGBA", "RGBa", "PA")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def check_resolution(resolution: int) -> int:
    """Returns ``resolution`` if it is a positive int, else raises :class:`ConfigError`."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution <= 0:
        raise ConfigError(f"image resolution must be a positive integer, got {resolution!r}")
    return resolution


def check_fit(fit: str) -> str:
    """Returns ``fit`` if it is one of :data:`FITS`, else raises :class:`ConfigError`."""
    if fit not in FITS:
        raise ConfigError(f"data.fit must be one of {', '.join(FITS)}, got {fit!r}")
    return fit


def load_image(path: str | os.PathLike[str], *, resolution: int, fit: str = "crop") -> torch.Tensor:
    """Reads an image file as a square RGB tensor (conversion rules in the module docstring).

    Args:
        path: any image file Pillow can decode; for a multi-frame file, the first frame.
        resolution: side ``R`` of the output, in pixels.
        fit: ``"crop"`` (centred square) or ``"pad"`` (white borders) for non-square images.

    Returns:
        ``[3, R, R]`` float32 tensor in [-1, 1].

    Raises:
        ConfigError: ``resolution`` or ``fit`` is invalid.
        ImageError: the file cannot be read or converted; the one-line message reads
            ``"<path>: cannot read image (<reason>)"``, the path on one printable line whatever
            its name holds (:func:`sphinx.utils.text.one_line`).
    """
    check_resolution(resolution)
    check_fit(fit)
    path = Path(path)
    name = one_line(str(path))
    try:
        regular = stat.S_ISREG(path.stat().st_mode)
    except OSError as error:
        raise _unreadable(name, _reason(error)) from error
    if not regular:
        # opening a FIFO would block until some other process writes to it
        raise _unreadable(name, "not a regular file (a FIFO, device or folder)")
    try:
        with Image.open(path) as opened:
            _check_pixel_count(opened, name)
            opened.load()
            image = ImageOps.exif_transpose(_shrunk(opened, resolution))  # a detached, upright copy
    except ImageError:
        raise
    except Exception as error:  # Pillow's decoders raise many exception types on corrupt data
        raise _unreadable(name, _reason(error)) from error
    return _convert(image, resolution=resolution, fit=fit, name=name)


def _check_pixel_count(image: Image.Image, name: str) -> None:
    """Refuse, from the header alone, an image whose decoding alone would take most of a gigabyte."""
    pixels = image.width * image.height
    if pixels > MAX_PIXELS:
        raise _unreadable(
            name,
            f"{image.width}x{image.height} is {pixels / 1e6:.0f} megapixels, more than the "
            f"{MAX_PIXELS / 1e6:.0f} decoded here; downscale it first (to a few thousand pixels a side)",
        )


def _shrunk(image: Image.Image, resolution: int) -> Image.Image:
    """A huge image box-filtered by an integer factor in its own pixel format, before any float copy.

    Float conversion takes 4 bytes per channel; a 40-megapixel RGBA photo would need 640 MB. Images
    under :data:`SHRINK_ABOVE_PIXELS` are untouched, so their results do not change.
    """
    factor = min(image.size) // (2 * resolution)
    if image.width * image.height <= SHRINK_ABOVE_PIXELS or factor < 2:
        return image
    if image.mode.startswith("I;16"):
        image = image.convert("I")
    elif image.mode in ("P", "PA"):  # palette indices must not be averaged
        has_alpha = image.mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    elif image.mode == "1":
        image = image.convert("L")
    # a box filter over the whole extent (not reduce(), which leaves a partial last box) keeps geometry
    reduced = image.resize((round(image.width / factor), round(image.height / factor)), Image.Resampling.BOX)
    reduced.info.update(image.info)  # keeps the EXIF orientation for exif_transpose
    return reduced


def convert_image(
    image: Image.Image | np.ndarray, *, resolution: int, fit: str = "crop", name: str = "image"
) -> torch.Tensor:
    """Converts a Pillow image or an array to a square RGB tensor (rules in the module docstring).

    Args:
        image: a Pillow image (EXIF orientation is applied), or an ``[H, W]`` or ``[H, W, C]``
            array with ``C`` in {1, 2, 3, 4} (gray, gray + alpha, RGB, RGBA): ``uint8`` in
            [0, 255], ``uint16`` in [0, 65535], ``bool``, or float in [0, 1].
        resolution: side ``R`` of the output, in pixels.
        fit: ``"crop"`` (centred square) or ``"pad"`` (white borders) for non-square images.
        name: what error messages call the image, e.g. its file name.

    Returns:
        ``[3, R, R]`` float32 tensor in [-1, 1].

    Raises:
        ConfigError: ``resolution`` or ``fit`` is invalid.
        ImageError: an unsupported mode, dtype or shape, or values out of range.
    """
    check_resolution(resolution)
    check_fit(fit)
    if isinstance(image, Image.Image):
        try:
            image = ImageOps.exif_transpose(image)
        except Exception as error:  # a malformed EXIF block surfaces as any of several types
            raise _unreadable(name, _reason(error)) from error
    return _convert(image, resolution=resolution, fit=fit, name=name)


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """Maps an image tensor in [-1, 1] to 8-bit pixels, rounding to nearest and clamping.

    Args:
        tensor: ``[3, H, W]`` or ``[1, 3, H, W]`` float in [-1, 1]; values outside are clamped.

    Returns:
        ``[H, W, 3]`` uint8 array.

    Raises:
        ImageError: wrong shape, not floating point, or NaN/Inf values.
    """
    if tensor.ndim == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 3 or tensor.shape[0] != 3:
        raise ImageError(f"expected an image tensor [3, H, W] or [1, 3, H, W], got {list(tensor.shape)}")
    if not tensor.is_floating_point():
        raise ImageError(f"expected a float image tensor in [-1, 1], got dtype {tensor.dtype}")
    tensor = tensor.detach().to(device="cpu", dtype=torch.float32)
    if not torch.isfinite(tensor).all():
        raise ImageError("image tensor holds NaN or Inf values; refusing to write it as pixels")
    pixels = ((tensor + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)  # [3, H, W]
    return pixels.permute(1, 2, 0).contiguous().numpy()  # [H, W, 3]


def save_image(tensor: torch.Tensor, path: str | os.PathLike[str]) -> Path:
    """Writes an image tensor as an 8-bit RGB PNG, atomically.

    The PNG is written to a hidden temporary file in the destination folder and moved into
    place with ``os.replace``, so a reader (or a resumed run) never sees a half-written file.
    Missing parent folders are created.

    Args:
        tensor: ``[3, H, W]`` or ``[1, 3, H, W]`` float in [-1, 1]; values outside are clamped.
        path: destination, ending in ``.png``.

    Returns:
        The destination path.

    Raises:
        ImageError: the tensor is not an image (see :func:`to_uint8`) or the path is not a PNG.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ImageError(f"{path}: save_image writes PNG files; use a .png file name")
    image = Image.fromarray(to_uint8(tensor))
    with atomic_open(path) as file:
        image.save(file, format="PNG")
    return path


def _unreadable(name: str, reason: str) -> ImageError:
    """The one-line error every unusable input gets: ``"<name>: cannot read image (<reason>)"``."""
    return ImageError(f"{name}: cannot read image ({reason})")


def _reason(error: BaseException) -> str:
    """One line saying why Pillow failed, without repeating the path."""
    if isinstance(error, UnidentifiedImageError):
        return "not an image format Pillow recognises"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _convert(image: Image.Image | np.ndarray, *, resolution: int, fit: str, name: str) -> torch.Tensor:
    if isinstance(image, Image.Image):
        pixels = _pixels_from_pillow(image, name)
    elif isinstance(image, np.ndarray):
        pixels = _pixels_from_array(image, name)
    else:
        raise _unreadable(name, f"expected a PIL image or a numpy array, got {type(image).__name__}")
    pixels = _composite_on_background(pixels)  # [H, W, 1 or 3]
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise _unreadable(name, f"no pixels: {pixels.shape[0]}x{pixels.shape[1]}")
    pixels = _fit_square(pixels, fit)  # [S, S, 1 or 3]
    pixels = _resize(pixels, resolution)  # [R, R, 1 or 3]
    tensor = torch.from_numpy(pixels).permute(2, 0, 1)  # [1 or 3, R, R]
    tensor = tensor.expand(3, -1, -1) if tensor.shape[0] == 1 else tensor  # [3, R, R]
    tensor = (tensor * 2.0 - 1.0).to(torch.float32).contiguous()
    if tuple(tensor.shape) != (3, resolution, resolution) or not torch.isfinite(tensor).all():
        raise _unreadable(name, f"conversion gave shape {list(tensor.shape)} or non-finite values")
    return tensor


def _pixels_from_pillow(image: Image.Image, name: str) -> np.ndarray:
    """``[H, W, C]`` float32 in [0, 1]; C is 1 or 3, plus 1 if there is an alpha channel."""
    mode = image.mode
    transparency = image.info.get("transparency")
    if mode in _SIXTEEN_BIT_MODES or mode == "I":
        values = np.asarray(image).astype(np.float64)  # native byte order whatever the mode
        if values.size and (values.min() < 0 or values.max() > SIXTEEN_BIT_MAX):
            raise _unreadable(
                name, f"mode {mode} values in [{values.min():.0f}, {values.max():.0f}], expected 16-bit [0, 65535]"
            )
        gray = (values / SIXTEEN_BIT_MAX).astype(np.float32)[..., None]  # [H, W, 1]
        if isinstance(transparency, int):  # a PNG tRNS gray level
            alpha = (values != transparency).astype(np.float32)[..., None]  # [H, W, 1]
            return np.concatenate([gray, alpha], axis=2)  # [H, W, 2]
        return gray
    if mode == "F":
        values = np.asarray(image, dtype=np.float32)
        if not np.isfinite(values).all() or (values.size and (values.min() < 0 or values.max() > 1)):
            raise _unreadable(name, "float pixels must be finite and in [0, 1]; save it as an 8- or 16-bit image")
        return values[..., None]  # [H, W, 1]
    has_alpha = mode in _GRAY_ALPHA_MODES or mode in _COLOR_ALPHA_MODES or transparency is not None
    if mode in _GRAY_MODES or mode in _GRAY_ALPHA_MODES:
        target = "LA" if has_alpha else "L"
    elif mode in _COLOR_MODES or mode in _COLOR_ALPHA_MODES:
        target = "RGBA" if has_alpha else "RGB"
    else:
        raise _unreadable(name, f"unsupported mode {mode}")
    # Pillow applies a palette or tRNS transparent colour when converting to LA / RGBA
    converted = image.convert(target)
    values = np.asarray(converted, dtype=np.float32) / 255.0
    return values[..., None] if values.ndim == 2 else values  # [H, W, C]


def _pixels_from_array(array: np.ndarray, name: str) -> np.ndarray:
    """``[H, W, C]`` float32 in [0, 1] from an array (rules in :func:`convert_image`)."""
    if array.ndim == 2:
        array = array[..., None]  # [H, W, 1]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise _unreadable(name, f"expected an array [H, W] or [H, W, C] with C in 1..4, got shape {list(array.shape)}")
    if array.dtype == np.uint8:
        values = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        values = (array.astype(np.float64) / SIXTEEN_BIT_MAX).astype(np.float32)
    elif array.dtype == np.bool_:
        values = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.floating):
        values = array.astype(np.float32)
        if not np.isfinite(values).all() or (values.size and (values.min() < 0 or values.max() > 1)):
            raise _unreadable(name, "float arrays must be finite and in [0, 1]")
    else:
        raise _unreadable(name, f"unsupported array dtype {array.dtype}; use uint8, uint16, bool or float in [0, 1]")
    return values


def _composite_on_background(pixels: np.ndarray) -> np.ndarray:
    """Drops the alpha channel of ``[H, W, 2 or 4]`` by compositing onto white."""
    if pixels.shape[2] in (1, 3):
        return pixels
    color, alpha = pixels[..., :-1], pixels[..., -1:]  # [H, W, C-1], [H, W, 1]
    return color * alpha + BACKGROUND * (1.0 - alpha)


def _fit_square(pixels: np.ndarray, fit: str) -> np.ndarray:
    height, width = pixels.shape[:2]
    if height == width:
        return pixels
    if fit == "crop":
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        return pixels[top : top + side, left : left + side]
    side = max(height, width)
    square = np.full((side, side, pixels.shape[2]), BACKGROUND, dtype=pixels.dtype)
    top, left = (side - height) // 2, (side - width) // 2
    square[top : top + height, left : left + width] = pixels
    return square


def _resize(pixels: np.ndarray, resolution: int) -> np.ndarray:
    """Lanczos resize of ``[S, S, C]`` float32, one Pillow ``F`` image per channel."""
    if pixels.shape[0] == resolution:
        return np.array(pixels, dtype=np.float32)  # a writable copy: Pillow's arrays are read-only
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(pixels[..., c], dtype=np.float32)).resize(
                (resolution, resolution), Image.Resampling.LANCZOS
            )
        )
        for c in range(pixels.shape[2])
    ]
    # Lanczos rings past the input range at sharp edges
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0)  # [R, R, C]
