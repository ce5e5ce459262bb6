"""Fetching files into torch's hub checkpoint folder (``TORCH_HOME`` moves it) with pooch's HTTP downloader,
under sphinx's rules: a file appears under its name complete and checked or not at all; ``SPHINX_OFFLINE=1``
forbids the network; every failure is one line that says where to place the file by hand.
"""

from __future__ import annotations

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
from sphinx.utils.files import atomic_open

_OFFLINE_VARIABLE = "SPHINX_OFFLINE"
_TIMEOUT_S = 30.0  # per socket operation (connect, each read), not for the whole transfer
# A bar is drawn once bytes have flowed this long: a download that cannot connect (offline) draws none.
_BAR_DELAY_S = 0.5
_CHUNK_BYTES = 1 << 20


def default_cache_dir() -> Path:
    """``<torch hub dir>/checkpoints``, the folder torchvision downloads to."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_path(url: str, *, cache_dir: str | os.PathLike[str] | None = None, filename: str | None = None) -> Path:
    """Where the cached copy of ``url`` lives: ``cache_dir`` (default :func:`default_cache_dir`) / ``filename``
    (default: the last part of the URL's path). Raises ValueError unless that is a plain file name."""
    filename = PurePosixPath(unquote(urlsplit(url).path)).name if filename is None else filename
    if filename in ("", ".", "..") or any(character in filename for character in "/\\\0"):
        raise ValueError(f"cannot cache {url} as {filename!r}: pass filename= with a plain file name")
    return (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / filename


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's contents, as 64 lowercase hex digits."""
    return pooch.file_hash(str(path), alg="sha256")


def download(
    url: str,
    *,
    sha256: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    filename: str | None = None,
    progress: bool = True,
) -> Path:
    """The cached copy of ``url`` (``http://``, ``https://`` or ``file://``), fetched first if not cached yet.

    Args:
        sha256: the expected SHA-256 (64 hex digits, any case) of cached copy and fresh download; None: no check.
        cache_dir, filename: where the copy goes, as in :func:`cached_path`; progress: a progress bar on stderr.

    Raises:
        DownloadError: fetching failed (network, HTTP status, truncated transfer, ``SPHINX_OFFLINE``
            set) or the checksum does not match; ValueError: a malformed sha256 or URL scheme.
    """
    expected = None if sha256 is None else sha256.strip().lower()
    if expected is not None and not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    path, scheme = cached_path(url, cache_dir=cache_dir, filename=filename), urlsplit(url).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise ValueError(f"cannot download {url}: the scheme must be one of http, https, file")
    if path.is_file():
        if expected is not None and (actual := file_sha256(path)) != expected:
            raise DownloadError(
                f"cached file {path} has sha256 {actual}, but {url} should have {expected}; "
                f"delete {path} and run again to download it afresh"
            )
        return path
    if scheme != "file" and os.environ.get(_OFFLINE_VARIABLE, "") not in ("", "0"):  # file:// is local: allowed
        raise DownloadError(
            f"cannot download {url}: {_OFFLINE_VARIABLE}={os.environ[_OFFLINE_VARIABLE]} forbids "
            f"network access; download it by hand and place the file at {path}"
        )
    source = Path(url2pathname(urlsplit(url).path)) if scheme == "file" else None
    with atomic_open(path) as sink:
        try:  # pooch asks a bar's truth before it tells the bar the size: 1 until then
            with tqdm(
                total=source.stat().st_size if source else 1,
                desc=path.name,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                disable=not progress,
                delay=_BAR_DELAY_S,
            ) as bar:
                if source is None:
                    pooch.HTTPDownloader(
                        progressbar=bar,
                        chunk_size=_CHUNK_BYTES,
                        timeout=_TIMEOUT_S,
                        headers={"User-Agent": f"sphinx-inversion/{__version__}"},
                    )(url, sink, None)
                else:
                    with source.open("rb") as stream:
                        while chunk := stream.read(_CHUNK_BYTES):
                            bar.update(sink.write(chunk))
        except OSError as error:  # requests' errors are OSErrors too
            raise DownloadError(
                f"cannot download {url} ({_reason(error)}); download it by hand and place the file at {path}"
            ) from error
        sink.flush()  # checked on disk before the file takes its name
        if expected is not None and (actual := file_sha256(sink.name)) != expected:
            raise DownloadError(
                f"{url} has sha256 {actual}, expected {expected}; the file was not "
                f"kept; if the source changed, download it by hand, check it and place it at {path}"
            )
    return path


def _reason(error: BaseException) -> str:
    """What went wrong, in one line: the innermost of the errors that requests and urllib3 wrap."""
    inner = [cause for cause in (*error.args, getattr(error, "reason", None)) if isinstance(cause, BaseException)]
    if inner and inner[-1] is not error:
        return _reason(inner[-1])
    text = " ".join(str(error).split()) or type(error).__name__
    return re.sub(r"^HTTPS?Connection(?:Pool)?\(.*?\): ", "", text)  # urllib3 names the connection first
