"""Progress over images and over steps: live bars on a terminal, a few plain lines elsewhere.

A job's output usually ends in a log file (Slurm, nohup, CI). A redrawn bar writes a carriage
return per update there, thousands per run; so when stderr is not a terminal each bar writes a
line at every quarter and at its end, and nothing in between.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm.auto import tqdm

QUARTERS = (0.25, 0.5, 0.75)


class LineProgress:
    """tqdm's few methods that sphinx uses, written as whole lines at milestones."""

    def __init__(self, *, desc: str, unit: str, total: int | None = None, stream: TextIO | None = None) -> None:
        self.desc, self.unit, self.total = desc, unit, total
        self.stream = stream if stream is not None else sys.stderr
        self.n, self.postfix = 0, ""  # tqdm's name: steps done so far
        self._started = time.perf_counter()
        self._next_milestone = 0
        self._closed = False

    def reset(self, total: int | None = None) -> None:
        self.total, self.n, self._next_milestone = total, 0, 0
        self._started = time.perf_counter()

    def set_postfix(self, refresh: bool = False, **values) -> None:
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def update(self, count: int = 1) -> None:
        self.n += count
        if not self.total:
            return
        if self._next_milestone < len(QUARTERS) and self.n >= QUARTERS[self._next_milestone] * self.total:
            while self._next_milestone < len(QUARTERS) and self.n >= QUARTERS[self._next_milestone] * self.total:
                self._next_milestone += 1
            if self.n < self.total:
                self._write()

    def close(self) -> None:
        if not self._closed and self.n:
            self._write()
        self._closed = True

    def _write(self) -> None:
        elapsed = time.perf_counter() - self._started
        of_total = f"/{self.total}" if self.total else ""
        if elapsed <= 0:
            rate = ""
        elif self.n >= elapsed:
            rate = f", {self.n / elapsed:.2f} {self.unit}/s"
        else:  # slow items (an image of 5000 steps): seconds each reads better than 0.00/s
            rate = f", {elapsed / self.n:.1f} s/{self.unit}"
        postfix = f" [{self.postfix}]" if self.postfix else ""
        print(
            f"{self.desc}: {self.n}{of_total} {self.unit} in {elapsed:.0f} s{rate}{postfix}",
            file=self.stream,
            flush=True,
        )


def progress_bar(
    *,
    desc: str,
    unit: str,
    total: int | None = None,
    position: int = 0,
    leave: bool = True,
    stream: TextIO | None = None,
):
    """A tqdm bar when ``stream`` (default stderr) is a terminal, else a :class:`LineProgress`."""
    stream = stream if stream is not None else sys.stderr
    if stream.isatty():
        return tqdm(total=total, desc=desc, unit=unit, position=position, leave=leave, delay=0.5, file=stream)
    return LineProgress(desc=desc, unit=unit, total=total, stream=stream)
