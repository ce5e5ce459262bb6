"""The one way sphinx writes a file: atomically, durably, with the user's umask.

A file appears under its name complete or not at all: it is written to a hidden temporary file
in the same folder, flushed and fsynced, renamed into place, and the folder is fsynced so that
the rename survives a power cut. A write that fails (a full disk) is reported as such even when
the writer hides it (``torch.save`` turns it into a RuntimeError about a zip position). The
temporary file is created with mode 0666 minus the umask, like any other tool's output
(``tempfile.mkstemp`` would make it 0600, unreadable to colleagues). A process killed mid-write
leaves only a temporary file, which :func:`remove_temporaries` clears.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from sphinx.errors import OutputError, SphinxError

TEMPORARY_SUFFIX = ".part"
# Older sphinx versions named their temporary files like this too; resume clears both.
_LEGACY_TEMPORARY_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary stream whose contents replace ``path`` only when the block ends without error.

    Args:
        path: the destination; missing parent folders are created.

    Yields:
        A writable binary stream on the temporary file, whose ``name`` is that file's path.

    Raises:
        OutputError: the folder or the file cannot be written (read-only, full disk, ...); one
            line naming the file. The temporary file is removed on any failure, Ctrl-C included.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        stream = _create_temporary(path)
    except OSError as error:
        raise output_error(path, error) from None
    temporary = stream.name
    try:
        with stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
        _fsync_folder(path.parent)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(error, OSError) and not isinstance(error, SphinxError):
            raise output_error(path, error) from None
        if isinstance(error, Exception) and stream.raw.failed_write is not None:
            raise output_error(path, stream.raw.failed_write) from None
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`); returns the path."""
    with atomic_open(path) as stream:
        stream.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_open`); returns the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path: str | os.PathLike) -> object:
    """The JSON value of a UTF-8 file.

    Raises:
        ValueError: why it cannot be had, in a few words without the path: unreadable, not
            UTF-8, not JSON, or nested deeper than Python's recursion limit can parse.
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"unreadable ({error.strerror or type(error).__name__})") from None
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON ({error.msg}, line {error.lineno})") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is a temporary file of an atomic write (``.<name>.<token>.part``)."""
    return path.name.startswith(".") and path.name.endswith((TEMPORARY_SUFFIX, _LEGACY_TEMPORARY_SUFFIX))


def remove_temporaries(folder: str | os.PathLike) -> int:
    """Delete the temporary files that killed writes left under ``folder``; returns how many.

    Only call it when no other process is writing there (e.g. at the start of a resumed run).
    """
    removed = 0
    for path in Path(folder).rglob(".*"):
        if path.is_file() and is_temporary(path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed


class _File(io.FileIO):
    """A file that remembers the first of its writes to fail, for writers that swallow the error."""

    failed_write: OSError | None = None

    def write(self, data) -> int:
        try:
            return super().write(data)
        except OSError as error:
            self.failed_write = self.failed_write or error
            raise


def _create_temporary(path: Path) -> io.BufferedWriter:
    # exclusive mode on a random name instead of mkstemp: it creates the file with 0666 minus the
    # umask (mkstemp: 0600) and a descriptor that child processes do not inherit.
    while True:
        try:
            raw = _File(path.with_name(f".{path.name}.{secrets.token_hex(6)}{TEMPORARY_SUFFIX}"), "xb")
        except FileExistsError:
            continue
        return io.BufferedWriter(raw)


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open folders; the rename itself is still atomic
    try:
        os.fsync(descriptor)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(descriptor)


def output_error(path: Path, error: OSError) -> OutputError:
    """The one-line error of a file that cannot be written, naming it and saying what to do."""
    reason = error.strerror or " ".join(str(error).split()) or type(error).__name__
    return OutputError(f"{path}: cannot write ({reason}); free disk space, or make the folder writable")
