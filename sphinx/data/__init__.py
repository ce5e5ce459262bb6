"""Target images: files, arrays and bundled samples to ``[3, R, R]`` float tensors in [-1, 1].

``sphinx.data.emoji`` (the demo prior's training data) is a separate module, imported on its own.
"""

from sphinx.data.datasets import (
    SAMPLE_NAMES,
    SAMPLES,
    BundledSamples,
    ImageFolder,
    ImageItem,
    Sample,
    collate_items,
    image_id_to_filename,
    load_folder_images,
    load_sample_pixels,
)
from sphinx.data.images import (
    FITS,
    IMAGE_EXTENSIONS,
    check_fit,
    check_resolution,
    convert_image,
    load_image,
    save_image,
    to_uint8,
)
from sphinx.utils.text import image_id_from_text, image_id_to_text

__all__ = [
    "FITS",
    "IMAGE_EXTENSIONS",
    "SAMPLES",
    "SAMPLE_NAMES",
    "BundledSamples",
    "ImageFolder",
    "ImageItem",
    "Sample",
    "check_fit",
    "check_resolution",
    "collate_items",
    "convert_image",
    "image_id_from_text",
    "image_id_to_filename",
    "image_id_to_text",
    "load_folder_images",
    "load_image",
    "load_sample_pixels",
    "save_image",
    "to_uint8",
]
