"""Error types whose messages are meant to be read by a user, on one line.

Every message names the offending file (or option) and says what to do about it.
"""

from __future__ import annotations

import os


class SphinxError(Exception):
    """Base class of every error sphinx raises on purpose."""


class CheckpointError(SphinxError, ValueError):
    """A generator checkpoint that cannot be loaded: wrong kind, corrupt, unsafe or unsupported."""


class DownloadError(SphinxError, OSError):
    """A file that could not be fetched, or whose checksum does not match."""


class MissingWeights(DownloadError):
    """Weights that are neither given, cached nor downloadable (LPIPS's backbone on an offline machine).

    Attributes:
        problem: what is missing and where it was looked for, without the advice that follows it in
            the message: an entry point says what to do in its own options.
    """

    def __init__(self, problem: str, advice: str) -> None:
        super().__init__(f"{problem}; {advice}")
        self.problem = problem


class ConfigError(SphinxError, ValueError):
    """A combination of options that cannot work, rejected before any compute."""


class ImageError(SphinxError, ValueError):
    """An input image that cannot be used: unreadable, or of the wrong shape or range."""


class OutputError(SphinxError, OSError):
    """A result that cannot be written: a read-only folder, a full disk."""


class RunInterrupted(BaseException):
    """A stop was requested (SIGTERM, SIGINT); the batch in flight saved its state first.

    A ``BaseException``, like ``KeyboardInterrupt``: a per-batch ``except Exception`` must not
    record it as the batch's crash.

    Attributes:
        signal_name: ``"SIGTERM"``, ``"SIGINT"``, ...
        saved: the checkpoint file written, or None when no batch was in flight.
    """

    def __init__(self, signal_name: str, saved: os.PathLike | None = None) -> None:
        super().__init__(f"stopped by {signal_name}")
        self.signal_name, self.saved = signal_name, saved
