"""Fetching files into a local cache: atomic, checksummed, with a progress bar.

Used for generator checkpoints and for LPIPS/VGG weights. Files live in torch's hub checkpoint
folder by default, so weights a user already fetched with torchvision are found, and
``TORCH_HOME`` moves the cache. Setting ``SPHINX_OFFLINE=1`` forbids network access: a file that
is not cached yet is an error that says where to place it by hand.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

import torch
from tqdm import tqdm

from sphinx import __version__
from sphinx.errors import DownloadError
from sphinx.files import atomic_open

_OFFLINE_VARIABLE = "SPHINX_OFFLINE"
_SCHEMES = ("http", "https", "file")
# per socket operation (connect, each read), not for the whole transfer
_TIMEOUT_S = 30.0
_CHUNK_BYTES = 1 << 20
_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")


def default_cache_dir() -> Path:
    """The folder downloads go to when no ``cache_dir`` is given.

    Returns:
        ``<torch hub dir>/checkpoints``, the folder torchvision uses; ``TORCH_HOME`` moves it.
    """
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_path(
    url: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    filename: str | None = None,
) -> Path:
    """Where the cached copy of ``url`` lives, whether or not it exists yet.

    Args:
        url: The address of the file; its query and fragment are ignored for naming.
        cache_dir: The cache folder; ``default_cache_dir()`` when None.
        filename: The name of the cached file; the last component of the URL's path when None.

    Returns:
        ``cache_dir / filename``.

    Raises:
        ValueError: ``filename`` is not a plain file name, or the URL's path has none to take.
    """
    if filename is None:
        filename = PurePosixPath(unquote(urlsplit(url).path)).name
        if not filename:
            raise ValueError(f"the URL {url} names no file; pass filename= to name the cached copy")
    if filename in (".", "..") or "/" in filename or "\\" in filename or "\0" in filename:
        raise ValueError(f"cache file name {filename!r} for {url} must be a plain file name")
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return folder / filename


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's contents, as 64 lowercase hex digits.

    Args:
        path: The file to hash; read in chunks, so any size is fine.

    Returns:
        The hex digest.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    url: str,
    *,
    sha256: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    filename: str | None = None,
    progress: bool = True,
) -> Path:
    """Return the cached copy of ``url``, fetching it first if it is not cached yet.

    The file is streamed to a temporary file in the cache folder and renamed into place only
    once complete and verified, so no partial file ever appears under the final name, and the
    temporary file is removed on any failure, Ctrl-C included.

    Args:
        url: An ``http://``, ``https://`` or ``file://`` address.
        sha256: The expected SHA-256 as 64 hex digits, checked on the cached copy and on a
            fresh download; None skips the check.
        cache_dir: The cache folder; ``default_cache_dir()`` when None.
        filename: The name of the cached file; the last component of the URL's path when None.
        progress: Show a progress bar on stderr while fetching.

    Returns:
        The path of the cached file.

    Raises:
        DownloadError: The file cannot be fetched (network, HTTP status, truncated transfer,
            ``SPHINX_OFFLINE`` set), or its checksum does not match.
        ValueError: ``sha256`` is not 64 hex digits, or the URL has an unsupported scheme.
    """
    expected = _normalise_sha256(sha256)
    path = cached_path(url, cache_dir=cache_dir, filename=filename)
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _SCHEMES:
        raise ValueError(f"cannot download {url}: the scheme must be one of {', '.join(_SCHEMES)}")

    if path.is_file():
        if expected is not None:
            actual = file_sha256(path)
            if actual != expected:
                raise DownloadError(
                    f"cached file {path} has sha256 {actual}, but {url} should have {expected}; "
                    f"delete {path} and run again to download it afresh"
                )
        return path

    # a file:// source is local, so offline mode has no reason to refuse it
    if scheme != "file" and _offline():
        raise DownloadError(
            f"cannot download {url}: {_OFFLINE_VARIABLE}={os.environ[_OFFLINE_VARIABLE]} forbids "
            f"network access; download it by hand and place the file at {path}"
        )

    with atomic_open(path) as sink:
        actual = _fetch(url, sink, path=path, progress=progress)
        if expected is not None and actual != expected:
            raise DownloadError(
                f"{url} has sha256 {actual}, expected {expected}; the file was not kept; "
                f"if the source changed, download it by hand, check it and place it at {path}"
            )
    return path


def _offline() -> bool:
    return os.environ.get(_OFFLINE_VARIABLE, "") not in ("", "0")


def _normalise_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    normalised = sha256.strip().lower()
    if not _SHA256_PATTERN.fullmatch(normalised):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    return normalised


def _fetch(url: str, sink: BinaryIO, *, path: Path, progress: bool) -> str:
    """Stream ``url`` into ``sink``; return the SHA-256 of what was written."""
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": f"sphinx-inversion/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None and length.strip().isdigit() else None
            received = 0
            with tqdm(
                total=total,
                desc=path.name,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                disable=not progress,
            ) as bar:
                while chunk := response.read(_CHUNK_BYTES):
                    sink.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as error:
        raise DownloadError(_failure(url, path, f"HTTP {error.code} {error.reason}")) from error
    except urllib.error.URLError as error:
        raise DownloadError(_failure(url, path, error.reason)) from error
    except http.client.IncompleteRead as error:
        raise DownloadError(_failure(url, path, "the connection closed mid-transfer")) from error
    except (OSError, http.client.HTTPException) as error:
        raise DownloadError(_failure(url, path, f"{type(error).__name__}: {error}")) from error
    # http.client ends a read early without complaint when the peer closes the connection
    if total is not None and received != total:
        raise DownloadError(_failure(url, path, f"received {received} of {total} bytes"))
    return digest.hexdigest()


def _failure(url: str, path: Path, reason: object) -> str:
    # one line, whatever the underlying error prints
    reason_text = " ".join(str(reason).split()) or "unknown reason"
    return (
        f"cannot download {url} ({reason_text}); download it by hand and place the file at {path}"
    )
