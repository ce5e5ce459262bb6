"""Fetching files into a local cache: pooch's HTTP downloader under sphinx's rules.

Files live in torch's hub checkpoint folder (``TORCH_HOME`` moves it), beside torchvision's; a file
appears under its name complete and checked or not at all; ``SPHINX_OFFLINE=1`` forbids the network;
every failure is one line that says where to place the file by hand.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import pooch
import torch
from tqdm import tqdm

from sphinx import __version__
from sphinx.errors import DownloadError
from sphinx.files import atomic_open

_OFFLINE_VARIABLE = "SPHINX_OFFLINE"
_TIMEOUT_S = 30.0  # per socket operation (connect, each read), not for the whole transfer
_CHUNK_BYTES = 1 << 20


def default_cache_dir() -> Path:
    """``<torch hub dir>/checkpoints``, the folder torchvision downloads to."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_path(url: str, *, cache_dir: str | os.PathLike[str] | None = None, filename: str | None = None) -> Path:
    """Where the cached copy of ``url`` lives (named after the URL's path unless ``filename``).

    Raises:
        ValueError: ``filename`` is not a plain file name, or the URL's path has none to take.
    """
    if filename is None:
        filename = PurePosixPath(unquote(urlsplit(url).path)).name
        if not filename:
            raise ValueError(f"the URL {url} names no file; pass filename= to name the cached copy")
    if filename in (".", "..") or "/" in filename or "\\" in filename or "\0" in filename:
        raise ValueError(f"cache file name {filename!r} for {url} must be a plain file name")
    return (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / filename


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's contents, as 64 lowercase hex digits."""
    return pooch.file_hash(str(path), alg="sha256")


def download(url: str, *, sha256: str | None = None, cache_dir: str | os.PathLike[str] | None = None,
             filename: str | None = None, progress: bool = True) -> Path:
    """The cached copy of ``url`` (``http://``, ``https://`` or ``file://``), fetched first if not cached yet.

    Args:
        sha256: the expected SHA-256 (64 hex digits), checked on the cached copy and on a fresh
            download; None skips the check.
        cache_dir, filename: where the copy goes, as in :func:`cached_path`.
        progress: show a progress bar on stderr while fetching.

    Raises:
        DownloadError: the file cannot be fetched (network, HTTP status, truncated transfer,
            ``SPHINX_OFFLINE`` set), or its checksum does not match.
        ValueError: ``sha256`` is not 64 hex digits, or the URL has an unsupported scheme.
    """
    expected = None if sha256 is None else sha256.strip().lower()
    if expected is not None and not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    path = cached_path(url, cache_dir=cache_dir, filename=filename)
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise ValueError(f"cannot download {url}: the scheme must be one of http, https, file")
    if path.is_file():
        actual = file_sha256(path) if expected is not None else None
        if actual != expected:
            raise DownloadError(f"cached file {path} has sha256 {actual}, but {url} should have {expected}; "
                                f"delete {path} and run again to download it afresh")
        return path
    # a file:// source is local, so offline mode has no reason to refuse it
    if scheme != "file" and os.environ.get(_OFFLINE_VARIABLE, "") not in ("", "0"):
        raise DownloadError(f"cannot download {url}: {_OFFLINE_VARIABLE}={os.environ[_OFFLINE_VARIABLE]} forbids "
                            f"network access; download it by hand and place the file at {path}")
    with atomic_open(path) as sink:
        sink = _Hashing(sink)
        try:
            source = Path(url2pathname(urlsplit(url).path)) if scheme == "file" else None
            # pooch asks a bar's truth before it tells the bar the size: 1 until then
            total = source.stat().st_size if source is not None else 1
            with tqdm(total=total, desc=path.name, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                      disable=not progress) as bar:
                if source is None:
                    pooch.HTTPDownloader(progressbar=bar, chunk_size=_CHUNK_BYTES, timeout=_TIMEOUT_S,
                                         headers={"User-Agent": f"sphinx-inversion/{__version__}"})(url, sink, None)
                else:
                    with source.open("rb") as stream:
                        while chunk := stream.read(_CHUNK_BYTES):
                            sink.write(chunk)
                            bar.update(len(chunk))
        except OSError as error:  # requests' errors are OSErrors too
            raise DownloadError(f"cannot download {url} ({_reason(error)}); download it by hand and place the "
                                f"file at {path}") from error
        if expected is not None and sink.digest.hexdigest() != expected:
            raise DownloadError(f"{url} has sha256 {sink.digest.hexdigest()}, expected {expected}; the file was not "
                                f"kept; if the source changed, download it by hand, check it and place it at {path}")
    return path


class _Hashing:
    """A write-only stream that hashes what goes through it."""

    def __init__(self, sink) -> None:
        self.sink, self.digest = sink, hashlib.sha256()
        self.flush = sink.flush  # pooch flushes after each chunk

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.sink.write(data)


def _reason(error: BaseException) -> str:
    """What went wrong, in one line: the innermost error, without the connection it names."""
    # requests wraps urllib3's error, which wraps the socket's (in args[0] or .reason)
    inner = error.args[0] if error.args and isinstance(error.args[0], BaseException) else getattr(error, "reason", None)
    if isinstance(inner, BaseException) and inner is not error:
        return _reason(inner)
    text = " ".join(str(error).split()) or type(error).__name__
    # urllib3 starts with the connection, e.g. "HTTPConnectionPool(host=..., port=...): Read timed out."
    return text.split("): ", 1)[-1] if text.startswith(("HTTPConnection", "HTTPSConnection")) else text
