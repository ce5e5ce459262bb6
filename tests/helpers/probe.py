"""A snippet run in a fresh Python process, for what only a process of its own can show: its peak
memory, and that it ends at all."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

_PEAK = """
def peak_mb():
    # VmHWM is this process's own peak. ru_maxrss is not: Linux carries it across exec, so the
    # child of a large test process would report its parent's peak.
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
"""


def run_probe(code: str, *, cwd: Path, timeout: float = 120) -> dict:
    """Run ``code`` (which may call ``peak_mb()``) and return the JSON object its last line prints."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK + textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
