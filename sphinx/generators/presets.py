"""Published StyleGAN2 checkpoints by name, and turning a checkpoint source into a local file."""

from __future__ import annotations

import difflib
import importlib.resources
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from urllib.parse import urlsplit

from sphinx.errors import CheckpointError
from sphinx.utils.download import download, file_sha256

_DOWNLOAD_SCHEMES = ("http", "https", "file")
_PACKAGE_SCHEME = "package"
# package:// reaches only this package's own assets: naming any other installed module would
# import it (running its code) just to find a file.
_OWN_PACKAGE = "sphinx"
_ASSETS_FOLDER = "assets"


@dataclass(frozen=True)
class Preset:
    """A published checkpoint that can be named instead of given as a path.

    Attributes:
        name: The name users type, e.g. ``ffhq1024``.
        url: An ``https://`` address, or ``package://sphinx/assets/<file>`` for a file shipped
            inside this package (no other package can be named).
        sha256: The published SHA-256 as 64 hex digits; None where no published hash is known.
        resolution: The generator's output size in pixels (square).
        description: One line: dataset and source.
        filename: The cached copy's name, where the URL's path does not end in one.
    """

    name: str
    url: str
    sha256: str | None
    resolution: int
    description: str
    filename: str | None = None


_ADA = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained"
_ADA_SOURCE = "StyleGAN2-ADA (NVlabs stylegan2-ada-pytorch)"
_NGC = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files"
# The PyTorch port's conversion of NVIDIA's stylegan2-ffhq-config-f.pkl: the file the SPHInX
# authors' README fetches (Google Drive id below, via gdown) and loads truncated to 256 px.
SPHINX_AUTHORS_DRIVE_ID = "1JCBiKY_yUixTa6F1eflABL88T4cii2GR"
_DRIVE = "https://drive.usercontent.google.com/download"

# StyleGAN2-ADA's published pickles: (preset name, file stem, resolution, what it generates).
_ADA_PICKLES = (
    ("ffhq1024", "ffhq", 1024, "FFHQ faces"),
    ("metfaces", "metfaces", 1024, "MetFaces portraits in art"),
    ("afhqcat", "afhqcat", 512, "AFHQ cats"),
    ("afhqdog", "afhqdog", 512, "AFHQ dogs"),
    ("afhqwild", "afhqwild", 512, "AFHQ wild animals"),
    ("brecahad", "brecahad", 512, "BreCaHAD breast cancer histology"),
)

# NVIDIA publishes no checksums for these files, so none is recorded here.
# `demo` is the small prior shipped inside the package (experiments/demo_prior/README.md).
PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        preset.name: preset
        for preset in (
            *(
                Preset(name, f"{_ADA}/{stem}.pkl", None, resolution, f"{what}, {_ADA_SOURCE}")
                for name, stem, resolution, what in _ADA_PICKLES
            ),
            Preset(
                "ffhq256",
                f"{_NGC}/stylegan2-ffhq-256x256.pkl",
                None,
                256,
                "FFHQ faces, StyleGAN2 (NVIDIA NGC, released with StyleGAN3)",
            ),
            Preset(
                "stylegan2-ffhq-config-f",
                f"{_DRIVE}?id={SPHINX_AUTHORS_DRIVE_ID}&export=download&confirm=t",
                None,
                1024,
                "FFHQ faces, StyleGAN2 config-f converted by the PyTorch port (the SPHInX authors' file)",
                filename="stylegan2-ffhq-config-f.pt",
            ),
            Preset(
                "demo",
                "package://sphinx/assets/demo_prior.pt",
                "91fb4e810ea30920c32b00fdf5ed7a63952f6c15f8b9b48cc1ea01f00710509f",
                64,
                "Noto Color Emoji faces, 64 px, trained here (experiments/demo_prior)",
            ),
        )
    }
)


def resolve_checkpoint(source: str | os.PathLike[str], *, progress: bool = True) -> Path:
    """Turn a checkpoint source into a local file, downloading it if needed.

    Args:
        source: An existing file; an ``http(s)://``, ``file://`` or ``package://`` URL; or the
            name of a preset in ``PRESETS``.
        progress: Show a progress bar on stderr while downloading.

    Returns:
        The path of a local file. Downloads go to ``sphinx.utils.download.default_cache_dir()``,
        which ``TORCH_HOME`` moves.

    Raises:
        CheckpointError: The source is a missing file, an unknown name, or a package resource
            that is missing or does not match its checksum.
        DownloadError: The file cannot be fetched or its checksum does not match.
    """
    text = os.fspath(source)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"{text}: not a regular file (a FIFO or device); point at the checkpoint file itself")
    scheme = urlsplit(text).scheme.lower()
    if scheme in _DOWNLOAD_SCHEMES:
        return download(text, progress=progress)
    if scheme == _PACKAGE_SCHEME:
        return _package_file(text)
    if text in PRESETS:
        return _resolve_preset(PRESETS[text], progress=progress)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {text} is a folder; give the checkpoint file inside it")
    if isinstance(source, os.PathLike) or path.suffix or os.sep in text or "/" in text:
        raise CheckpointError(f"checkpoint {text}: no such file")
    close = difflib.get_close_matches(text, PRESETS, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise CheckpointError(
        f"checkpoint {text!r} is neither a file, a URL nor a known preset{hint}; presets: {', '.join(sorted(PRESETS))}"
    )


def _resolve_preset(preset: Preset, *, progress: bool) -> Path:
    if urlsplit(preset.url).scheme == _PACKAGE_SCHEME:
        path = _package_file(preset.url)
        if preset.sha256 is not None and file_sha256(path) != preset.sha256.lower():
            raise CheckpointError(
                f"packaged checkpoint {path} of preset {preset.name} does not match its sha256 "
                f"{preset.sha256}; reinstall sphinx"
            )
        return path
    return download(preset.url, sha256=preset.sha256, filename=preset.filename, progress=progress)


def _package_file(url: str) -> Path:
    """The file on disk behind ``package://<package>/<relative path>``."""
    parts = urlsplit(url)
    package = parts.netloc
    relative = PurePosixPath(parts.path.lstrip("/"))
    if not package or not relative.parts or ".." in relative.parts:
        raise CheckpointError(f"checkpoint {url}: expected package://<package>/<path inside it>")
    if package != _OWN_PACKAGE or relative.parts[0] != _ASSETS_FOLDER:
        raise CheckpointError(
            f"checkpoint {url}: package:// names only sphinx's own assets "
            f"(package://{_OWN_PACKAGE}/{_ASSETS_FOLDER}/...); give other files as a path"
        )
    try:
        resource = importlib.resources.files(package).joinpath(*relative.parts)
    except ModuleNotFoundError as error:
        raise CheckpointError(f"checkpoint {url}: package {package} is not installed") from error
    # a zipped install has no real path to hand to torch.load or to mmap
    if not isinstance(resource, Path):
        raise CheckpointError(f"checkpoint {url}: package {package} is not installed as files on disk")
    if not resource.is_file():
        raise CheckpointError(f"checkpoint {url}: no such file {resource}; is {package} installed with its assets?")
    return resource
