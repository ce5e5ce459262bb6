"""What the tests share: composing an entry point's config, running a job (in this process or as
the command a user types), reading a run dir's tables, and small data makers.

Imported as ``helpers`` (``tests/`` is on the path of every test through its conftest).
"""

from helpers.configs import compose
from helpers.data import fast_tier, images_of
from helpers.jobs import TIMEOUT, disk_full_past, read_rows, run_in_process, sphinx_run, start, without_time

__all__ = [
    "TIMEOUT",
    "compose",
    "disk_full_past",
    "fast_tier",
    "images_of",
    "read_rows",
    "run_in_process",
    "sphinx_run",
    "start",
    "without_time",
]
