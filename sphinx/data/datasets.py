"""Datasets of target images: a folder of files, and the bundled out-of-distribution samples.

A dataset yields one :class:`ImageItem` per image and never raises for a bad file: an image that
cannot be read comes back with ``image=None`` and a one-line ``error``, so one poisoned file
leaves the others intact. :func:`collate_items` splits a batch into the images to invert and the
failures to report. Everything that cannot work at all (a missing folder, no images, a bad
option) is a :class:`ConfigError` raised by the constructor, before any compute.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from sphinx.data.images import IMAGE_EXTENSIONS, check_fit, check_resolution, convert_image, load_image
from sphinx.errors import ConfigError, ImageError
from sphinx.utils.text import one_line

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageItem:
    """One image of a dataset, or the reason it could not be read.

    Attributes:
        id: unique, stable name of the image: its path relative to the folder with ``/``
            separators (``"sub/face.png"``), or the sample name (``"astronaut"``). A file name
            is kept as it is, whatever it holds (a newline, bytes that are not UTF-8): tables,
            captions and logs show its text form (:func:`sphinx.utils.text.image_id_to_text`).
        image: ``[3, R, R]`` float32 in [-1, 1], or ``None`` when it could not be read.
        error: one line saying why it could not be read, or ``None`` when ``image`` is set.
    """

    id: str
    image: torch.Tensor | None
    error: str | None

    def __post_init__(self) -> None:
        if (self.image is None) == (self.error is None):
            raise ValueError(f"ImageItem {self.id!r} needs exactly one of image and error")
        if self.error is not None and "\n" in self.error:
            raise ValueError(f"ImageItem {self.id!r}: error must be one line, got {self.error!r}")
        if self.image is not None and (
            self.image.ndim != 3 or self.image.shape[0] != 3 or self.image.dtype != torch.float32
        ):
            raise ValueError(
                f"ImageItem {self.id!r}: image must be float32 [3, R, R], "
                f"got {self.image.dtype} {list(self.image.shape)}"
            )


def collate_items(items: Sequence[ImageItem], *, resolution: int | None = None) -> dict:
    """Batches dataset items: the readable images stacked, the unreadable ones listed.

    Use it as the ``collate_fn`` of a ``DataLoader`` over :class:`ImageFolder` or
    :class:`BundledSamples`, e.g. ``functools.partial(collate_items, resolution=data.resolution)``.

    Args:
        items: what the dataset yielded, in batch order.
        resolution: side ``R`` of the images; gives a batch in which every image failed the
            shape ``[0, 3, R, R]`` (without it, ``[0, 3, 0, 0]``) and checks the others.

    Returns:
        ``{"ids": [id of each image], "images": [B, 3, R, R] float32 in [-1, 1],
        "failures": [(id, error), ...]}``, both lists in batch order.

    Raises:
        ImageError: the readable images differ in shape, or differ from ``resolution``.
    """
    ok = [item for item in items if item.image is not None]
    shapes = {tuple(item.image.shape) for item in ok}
    if resolution is not None:
        shapes.add((3, resolution, resolution))
    if len(shapes) > 1:
        raise ImageError(
            f"cannot batch images of different shapes {sorted(shapes)}; load them with the same resolution"
        )
    if ok:
        images = torch.stack([item.image for item in ok])  # [B, 3, R, R]
    else:
        side = resolution if resolution is not None else 0
        images = torch.empty(0, 3, side, side)  # [0, 3, R, R]
    return {
        "ids": [item.id for item in ok],
        "images": images,
        "failures": [(item.id, item.error) for item in items if item.image is None],
    }


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_STEM = 80


def image_id_to_filename(image_id: str) -> str:
    """A flat file stem for an image's output files, unique for distinct ids.

    The stem keeps only ``A-Z a-z 0-9 . _ -``: an image extension is dropped, ``/`` becomes
    ``__``, any other run of characters ``_``, a leading dot ``_``, and long names are cut. An id
    that comes out changed gets ``-`` and 8 hex digits of its SHA-1 appended, so ids that
    sanitize alike still get distinct stems: ``"sub/a b.png"`` -> ``"sub__a_b-<hash>"``, while
    ``"astronaut"`` stays ``"astronaut"``.

    Args:
        image_id: an :attr:`ImageItem.id`.

    Returns:
        A non-empty file stem, at most 89 characters.
    """
    if not isinstance(image_id, str) or not image_id:
        raise ValueError(f"image id must be a non-empty string, got {image_id!r}")
    stem = image_id
    root, extension = os.path.splitext(stem)
    if root and extension.lower() in IMAGE_EXTENSIONS:
        stem = root
    stem = "__".join(_UNSAFE.sub("_", part) for part in stem.split("/"))
    stem = re.sub(r"^\.", "_", stem)[:_MAX_STEM] or "_"
    if stem != image_id:
        # surrogatepass: file names that are not valid UTF-8 reach Python as lone surrogates
        stem = f"{stem}-{hashlib.sha1(image_id.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
    return stem


def _check_limit(limit: int | None, source: str) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise ConfigError(f"data.limit must be a positive integer or null (all images) for {source}, got {limit!r}")
    return limit


def select_shard(ids: Sequence[str], shard: int, num_shards: int) -> tuple[str, ...]:
    """The ids of shard ``shard`` of ``num_shards``, in their order: each id goes to one shard by a
    hash of the id itself, so an array of jobs covers a folder exactly once, and adding images to
    the folder never moves an image that is already in a shard (its run dir stays valid).

    Raises:
        ConfigError: shard numbers that cannot work.
    """
    for key, value, low in (("num_shards", num_shards, 1), ("shard", shard, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"data.{key} must be an integer >= {low}, got {value!r}")
    if shard >= num_shards:
        raise ConfigError(f"data.shard must be below data.num_shards={num_shards} (shards count from 0), got {shard}")
    if num_shards == 1:
        return tuple(ids)
    digest = lambda image_id: hashlib.sha1(image_id.encode("utf-8", "surrogatepass")).digest()[:8]
    return tuple(image_id for image_id in ids if int.from_bytes(digest(image_id), "big") % num_shards == shard)


class ImageFolder(Dataset):
    """Every image file under a folder, sorted by relative path.

    Image files are recognised by extension (case-insensitive): png, jpg, jpeg, bmp, tif, tiff,
    webp, gif. Other files and hidden files (a leading ``.``, such as macOS ``._`` files) are
    ignored and counted in :attr:`skipped`; hidden folders (``.git``) are not entered. A file with an
    image extension that cannot be decoded is kept: it yields an :class:`ImageItem` whose
    ``error`` names it (so does a FIFO or a device with an image name: only regular files are read).

    Attributes:
        root: the folder.
        resolution: side ``R`` of every image.
        fit: ``"crop"`` or ``"pad"`` for non-square images.
        ids: the id of every image, in dataset order.
        skipped: how many files were ignored (not counting those in hidden folders).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        resolution: int,
        fit: str = "crop",
        limit: int | None = None,
        recursive: bool = True,
        shard: int = 0,
        num_shards: int = 1,
    ) -> None:
        """Lists the folder's images (reading none of them).

        Args:
            path: the folder of images (``data.path``).
            resolution: side ``R`` of the output images, usually the generator's resolution.
            fit: ``"crop"`` (centred square) or ``"pad"`` (white borders) for non-square images.
            limit: keep only the first ``limit`` images in sorted order; ``None`` keeps all.
            recursive: also list the images in sub-folders.
            shard, num_shards: keep only shard ``shard`` of ``num_shards`` (:func:`select_shard`),
                after ``limit``: an array of jobs over one folder.

        Raises:
            ConfigError: the folder is missing, not a folder or holds no image files, or an
                option is invalid.
        """
        self.resolution = check_resolution(resolution)
        self.fit = check_fit(fit)
        self.root = Path(path).expanduser()
        limit = _check_limit(limit, str(self.root))
        if not self.root.exists():
            raise ConfigError(f"data.path {self.root} does not exist; set data.path to a folder of images")
        if not self.root.is_dir():
            raise ConfigError(f"data.path {self.root} is not a folder; set data.path to a folder of images")
        relative_paths, self.skipped = _list_images(self.root, recursive=recursive)
        if not relative_paths:
            extensions = ", ".join(extension.lstrip(".") for extension in IMAGE_EXTENSIONS)
            raise ConfigError(
                f"data.path {self.root} holds no image files ({extensions}; "
                f"{self.skipped} other files ignored); set data.path to a folder of images"
            )
        self.ids: tuple[str, ...] = select_shard(relative_paths[:limit], shard, num_shards)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> ImageItem:
        image_id = self.ids[index]
        try:
            image = load_image(self.root / image_id, resolution=self.resolution, fit=self.fit)
        except ImageError as error:
            return ImageItem(image_id, None, one_line(str(error)))
        return ImageItem(image_id, image, None)


def load_folder_images(
    path: str | os.PathLike[str], *, resolution: int, fit: str = "crop", limit: int | None = None
) -> torch.Tensor:
    """Every readable image under a folder as one tensor: training data for a prior.

    Args:
        path: the folder, searched recursively as :class:`ImageFolder` does.
        resolution: side ``R`` of the output images, the generator's resolution.
        fit: ``"crop"`` (centred square) or ``"pad"`` (white borders) for non-square images.
        limit: keep only the first ``limit`` images in sorted order; ``None`` keeps all.

    Returns:
        ``[N, 3, R, R]`` float32 in [-1, 1], in sorted path order. Unreadable files are left out
        with a warning: one bad file does not stop a training run.

    Raises:
        ConfigError: the folder is missing or holds no readable image, or an option is invalid.
    """
    folder = ImageFolder(path, resolution=resolution, fit=fit, limit=limit)
    items = [folder[index] for index in range(len(folder))]
    unreadable = [item for item in items if item.image is None]
    if len(unreadable) == len(items):
        raise ConfigError(
            f"data.path {folder.root}: none of its {len(items)} image files can be read ({unreadable[0].error})"
        )
    if unreadable:
        log.warning(
            "%d of %d image files under %s cannot be read and are left out, e.g. %s",
            len(unreadable),
            len(items),
            folder.root,
            unreadable[0].error,
        )
    return torch.stack([item.image for item in items if item.image is not None])  # [N, 3, R, R]


def _list_images(root: Path, *, recursive: bool) -> tuple[list[str], int]:
    """Image paths relative to ``root`` (POSIX, sorted) and the count of other files."""
    images, skipped = [], 0
    # os.walk does not follow symlinked folders, so a link loop cannot make the listing endless
    for folder, subfolders, files in os.walk(root):
        # hidden folders (.git, .ipynb_checkpoints) are pruned unread, so their files are not counted
        subfolders[:] = sorted(name for name in subfolders if not name.startswith(".")) if recursive else []
        for name in files:
            if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
                skipped += 1
                continue
            images.append(Path(folder, name).relative_to(root).as_posix())
    return sorted(images), skipped


@dataclass(frozen=True)
class Sample:
    """One bundled picture: a ``skimage.data`` function and the square to keep.

    Attributes:
        name: the ``skimage.data`` function, and the image id.
        description: what it shows.
        crop: ``(top, bottom, left, right)`` in the original pixels, or ``None`` for the whole
            picture (then ``fit`` decides).
    """

    name: str
    description: str
    crop: tuple[int, int, int, int] | None = None


# Out-of-distribution targets for a face prior, roughly from near to far. All ship inside
# scikit-image (no download). The crops were chosen by eye to frame the face as FFHQ / AFHQ do.
SAMPLES: tuple[Sample, ...] = (
    Sample("astronaut", "portrait of astronaut Eileen Collins, cropped to her face", (0, 240, 105, 345)),
    Sample("chelsea", "Chelsea the cat, cropped to her face", (0, 300, 90, 390)),
    Sample("coffee", "a cup of coffee on a saucer"),
    Sample("retina", "a human retina (fundus photograph)"),
    Sample("camera", "the grayscale cameraman photograph"),
    Sample("immunohistochemistry", "an immunohistochemistry microscope slide"),
    Sample("hubble_deep_field", "the Hubble eXtreme Deep Field"),
)
SAMPLE_NAMES: tuple[str, ...] = tuple(sample.name for sample in SAMPLES)


class BundledSamples(Dataset):
    """The bundled out-of-distribution set, built from ``skimage.data`` when read.

    Samples, in this fixed order: astronaut (face crop), chelsea (cat face crop), coffee,
    retina, camera (grayscale), immunohistochemistry, hubble_deep_field. The ids are these
    names. Nothing is copied into the repository; each item is decoded on access.

    Attributes:
        resolution: side ``R`` of every image.
        fit: ``"crop"`` or ``"pad"`` for the samples that are not square after their crop.
        ids: the selected names, in dataset order.
    """

    def __init__(
        self,
        *,
        resolution: int,
        fit: str = "crop",
        limit: int | None = None,
        names: Sequence[str] | None = None,
        shard: int = 0,
        num_shards: int = 1,
    ) -> None:
        """Selects the samples (reading none of them).

        Args:
            resolution: side ``R`` of the output images, usually the generator's resolution.
            fit: ``"crop"`` (centred square) or ``"pad"`` (white borders) for non-square samples.
            limit: keep only the first ``limit`` selected samples; ``None`` keeps all.
            names: a subset of :data:`SAMPLE_NAMES`, kept in the given order; ``None`` is all.
            shard, num_shards: keep only shard ``shard`` of ``num_shards`` (:func:`select_shard`).

        Raises:
            ConfigError: an unknown or repeated name, an empty selection or an invalid option.
        """
        self.resolution = check_resolution(resolution)
        self.fit = check_fit(fit)
        limit = _check_limit(limit, "the bundled samples")
        if names is None:
            names = SAMPLE_NAMES
        if isinstance(names, str):
            raise ConfigError(f"data.names must be a list of sample names, got the string {names!r}")
        names = tuple(names)
        unknown = [name for name in names if name not in SAMPLE_NAMES]
        if unknown:
            raise ConfigError(
                f"unknown bundled sample(s) {', '.join(map(repr, unknown))}; choose from {', '.join(SAMPLE_NAMES)}"
            )
        if len(set(names)) != len(names):
            raise ConfigError(f"data.names repeats a sample: {list(names)}")
        if not names:
            raise ConfigError(f"data.names is empty; choose from {', '.join(SAMPLE_NAMES)}")
        self.ids: tuple[str, ...] = select_shard(names[:limit], shard, num_shards)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> ImageItem:
        name = self.ids[index]
        try:
            pixels = load_sample_pixels(name)
            image = convert_image(pixels, resolution=self.resolution, fit=self.fit, name=name)
        except ImageError as error:
            return ImageItem(name, None, str(error))
        return ImageItem(name, image, None)

    def batch(self) -> tuple[torch.Tensor, list[str]]:
        """Every sample as one batch: ``([N, 3, R, R] in [-1, 1], ids)`` (an unreadable one fails)."""
        collated = collate_items([self[index] for index in range(len(self))], resolution=self.resolution)
        if collated["failures"]:
            image_id, error = collated["failures"][0]
            raise ImageError(f"bundled sample {image_id}: {error}")
        return collated["images"], collated["ids"]


def load_sample_pixels(name: str) -> np.ndarray:
    """The pixels of one bundled sample after its crop, as ``skimage.data`` gives them.

    Args:
        name: one of :data:`SAMPLE_NAMES`.

    Returns:
        ``[H, W]`` or ``[H, W, 3]`` uint8 array.

    Raises:
        ConfigError: an unknown name.
        ImageError: scikit-image could not provide it, or its size no longer fits the crop.
    """
    samples = {sample.name: sample for sample in SAMPLES}
    if name not in samples:
        raise ConfigError(f"unknown bundled sample {name!r}; choose from {', '.join(SAMPLE_NAMES)}")
    sample = samples[name]
    import skimage.data  # deferred: importing scikit-image costs about a second

    try:
        pixels = np.asarray(getattr(skimage.data, name)())
    except Exception as error:  # a stripped install or a data fetch failure, of any type
        raise ImageError(
            f"{name}: cannot read image (skimage.data.{name}() failed: "
            f"{' '.join(str(error).split()) or type(error).__name__})"
        ) from error
    if sample.crop is not None:
        top, bottom, left, right = sample.crop
        if bottom > pixels.shape[0] or right > pixels.shape[1]:
            raise ImageError(
                f"{name}: cannot read image (skimage.data.{name}() is "
                f"{pixels.shape[1]}x{pixels.shape[0]}, smaller than its crop {sample.crop})"
            )
        pixels = pixels[top:bottom, left:right]
    return pixels
