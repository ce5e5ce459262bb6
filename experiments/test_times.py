"""How long the test suite takes on this machine: the fast tier and the full suite (what CI runs).

    python experiments/test_times.py            # both, then the "test-times" block of tests/README.md
    python experiments/test_times.py --tier fast

Each tier runs in a child process as a user runs it; its CPU seconds are the child's (and its
children's: workers, entry-point subprocesses, notebook kernels) user + system time. Run it on
an otherwise idle machine: two busy processes on two cores stretch each other's CPU time too.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_block import replace_block  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TIERS = {
    "fast": ('python -m pytest -m "not slow"', ["-m", "not slow"]),
    "full": ("make test (pytest -n auto --dist worksteal)", ["-n", "auto", "--dist", "worksteal"]),
}


def measure(arguments: list[str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds and pytest's last line for one run of the suite."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    wall, after = time.monotonic() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
    if done.returncode != 0:
        sys.exit(f"the suite failed ({arguments}): {summary}")
    return wall, cpu, summary.strip("= ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", choices=[*TIERS, "both"], default="both")
    tiers = list(TIERS) if (tier := parser.parse_args().tier) == "both" else [tier]
    rows = []
    for name in tiers:
        command, arguments = TIERS[name]
        wall, cpu, summary = measure(arguments)
        rows.append(f"| {name} | `{command}` | {wall / 60:.1f} min | {cpu / 60:.1f} min | {summary} |")
        print(rows[-1], flush=True)
    if tier == "both":
        machine = f"{os.cpu_count()} CPU cores, {platform.machine()}, Python {platform.python_version()}"
        replace_block(
            "test-times",
            readme=REPO / "tests" / "README.md",
            body="\n".join(
                [
                    f"Measured by `python experiments/test_times.py` on {machine}, idle otherwise:",
                    "",
                    "| tier | command | wall | CPU | pytest |",
                    "|---|---|---|---|---|",
                    *rows,
                ]
            ),
        )


if __name__ == "__main__":
    main()
