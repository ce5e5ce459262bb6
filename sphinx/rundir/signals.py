"""SIGTERM and SIGINT as a request to stop at the next step, with the batch's state saved.

``timeout``, ``kill`` and SLURM send SIGTERM; Ctrl-C sends SIGINT. While batches run, the first
signal only sets :attr:`StopSignals.received`; the loop saves its batch at the next step and
raises :class:`~sphinx.inversion.batch_checkpoint.RunInterrupted`. Outside batches (loading,
writing the tables), or at a second signal, the handler raises it at once.
"""

from __future__ import annotations

import signal

from sphinx.errors import RunInterrupted

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """The process's SIGTERM/SIGINT handler; :meth:`install` again after anyone replaced it."""

    def __init__(self) -> None:
        self.received: str | None = None
        self.deferring = False

    def install(self) -> None:
        """Handle SIGTERM and SIGINT here (Lightning installs its own at the start of a loop)."""
        for number in SIGNALS:
            signal.signal(number, self._handle)

    def requested(self) -> str | None:
        """The name of the signal that asked to stop, or None."""
        return self.received

    def _handle(self, number: int, frame) -> None:
        name = signal.Signals(number).name
        if self.received is not None or not self.deferring:
            raise RunInterrupted(name)
        self.received = name


def exit_status(signal_name: str) -> int:
    """The shell's status for a process ended by ``signal_name``: 128 + its number (SIGTERM: 143)."""
    return 128 + int(signal.Signals[signal_name])
