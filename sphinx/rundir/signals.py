"""SIGTERM, SIGINT and the schedulers' warning signals as a request to stop at the next step, with
the batch's state saved.

``timeout``, ``kill`` and SLURM send SIGTERM; Ctrl-C sends SIGINT; a scheduler warns with SIGUSR1
(SLURM's ``--signal``) or SIGUSR2 (what submitit asks SLURM for, before the time limit and on
preemption). While batches run, the first signal only sets :attr:`StopSignals.received`; the loop
saves its batch at the next step and raises
:class:`~sphinx.inversion.batch_checkpoint.RunInterrupted`. Outside batches (loading, writing the
tables), or at a second signal, the handler raises it at once. A warning signal that a scheduler's
own handler was waiting for (submitit's requeue) is handed over to it once the batch is saved
(:func:`hand_over`), so the job is requeued into the same run dir and resumes there.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

from sphinx.errors import RunInterrupted

WARNING_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)
SIGNALS = (signal.SIGTERM, signal.SIGINT, *WARNING_SIGNALS)
# The handlers a scheduler had on its warning signals when sphinx first took them over.
_SCHEDULER_HANDLERS: dict[int, Callable] = {}


class StopSignals:
    """The process's stop-signal handler; :meth:`install` again after anyone replaced it."""

    def __init__(self) -> None:
        self.received: str | None = None
        self.deferring = False
        self._installed = False

    def install(self) -> None:
        """Handle the stop signals here (Lightning installs its own at the start of a loop),
        remembering a scheduler's handlers of its warning signals for :func:`hand_over`."""
        for number in SIGNALS:
            previous = signal.getsignal(number)
            # only what was there before the job began: Lightning's own SLURM handler, installed
            # later, would save a trainer checkpoint that nothing reads
            theirs = callable(previous) and not isinstance(getattr(previous, "__self__", None), StopSignals)
            if number in WARNING_SIGNALS and theirs and not self._installed:
                _SCHEDULER_HANDLERS[number] = previous
            signal.signal(number, self._handle)
        self._installed = True

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


def hand_over(signal_name: str) -> bool:
    """Pass a warning signal on to the scheduler's handler that was waiting for it (submitit
    checkpoints its job and requeues it, then exits); False when there is none."""
    number = int(signal.Signals[signal_name])
    handler = _SCHEDULER_HANDLERS.get(number)
    if handler is None:
        return False
    handler(number, None)
    return True
