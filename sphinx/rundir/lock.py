"""One run at a time in a run dir.

Two jobs writing one run dir would invert the same images twice, rewrite each other's tables and
logger files, and leave ``.hydra/`` describing whichever started last. A job therefore holds an
exclusive lock on ``<run dir>/.run.lock`` from before it accepts the run dir until it ends; a
second job that finds the lock held stops before it writes anything, with one line naming the
holder. The lock is the kernel's (``flock``): it goes with its process, so a job killed outright
(SIGKILL, OOM killer, power cut) leaves no stale lock behind, and the file itself is never
deleted (deleting a lock file lets two jobs lock two different files).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import time
from pathlib import Path

from sphinx.errors import ConfigError
from sphinx.utils.files import output_error

log = logging.getLogger(__name__)

LOCK_FILE = ".run.lock"


class RunDirLock:
    """The exclusive lock of a run dir, held from :meth:`acquire` (or ``with``) until :meth:`release`.

    Args:
        run_dir: the run's folder (created if missing).
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._descriptor: int | None = None

    def acquire(self) -> RunDirLock:
        """Take the lock, or refuse at once if another job holds it.

        Raises:
            ConfigError: another job holds the run dir; the one line names it and says what to do.
            OutputError: the lock file cannot be created (a read-only folder).
        """
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            # not inherited (PEP 446): a process the job starts does not keep the lock after it
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:
            raise output_error(self.path, error) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = _read_holder(descriptor)
            os.close(descriptor)
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                # a file system without locks (some NFS or Lustre mounts): run, but say what is unguarded
                log.warning(
                    "cannot lock %s (%s); nothing stops a second run from writing into %s at the same time",
                    self.path,
                    error.strerror or error,
                    self.run_dir,
                )
                return self
            raise ConfigError(
                f"{self.run_dir} is in use by another run{f' ({holder})' if holder else ''}; wait for it to "
                "end, or start a new run (leave out hydra.run.dir, or give a new folder)"
            ) from None
        # who holds it, for the message of a job refused; written in place (a new file would be unlocked)
        holder = f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}"
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{holder}\n".encode(), 0)
        self._descriptor = descriptor
        return self

    def release(self) -> None:
        """Let the next job in (the file stays: see the module docstring)."""
        if self._descriptor is not None:
            descriptor, self._descriptor = self._descriptor, None
            os.close(descriptor)  # closing the last descriptor of the open file drops the flock

    def __enter__(self) -> RunDirLock:
        return self.acquire()

    def __exit__(self, *exception) -> None:
        self.release()


def _read_holder(descriptor: int) -> str:
    """The holder's line in the lock file ("" if it has not written it yet)."""
    try:
        return os.pread(descriptor, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""
