"""Runs the README's main command and rewrites the README block that shows its result.

    python experiments/main_command/regenerate.py

It runs ``python -m sphinx.run +experiment=ood_faces`` on one CPU thread (OMP_NUM_THREADS=1),
copies the run's comparison pictures next to this script, and replaces the text between
the ``main-command`` markers in README.md with the printed summary, the wall time and the
picture. Nothing in that block is written by hand.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
from readme_block import replace_block  # noqa: E402
COMMAND = ["python", "-m", "sphinx.run", "+experiment=ood_faces"]


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = Path(scratch) / "run"
        environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        started = time.perf_counter()
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        finished = subprocess.run([sys.executable, *COMMAND[1:], f"hydra.run.dir={run_dir}"], cwd=ROOT,
                                  env=environment, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # CPU seconds of the one-thread run: what it costs on a free core, whatever else the machine runs
        cpu_seconds = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
        if finished.returncode != 0:
            sys.exit(f"the main command failed:\n{finished.stderr[-3000:]}")
        summary = [line for line in finished.stdout.splitlines() if line.strip()][-2:]
        summary[-1] = "results: outputs/ood_faces/<date>/results.csv"
        shutil.copyfile(run_dir / "comparison_small.png", HERE / "comparison_small.png")
        shutil.copyfile(run_dir / "comparison.png", HERE / "comparison.png")
    block = "\n".join([
        "Expected end of its output (the last digits vary with the CPU thread count):",
        "",
        "```",
        *summary,
        "```",
        "",
        f"It took {cpu_seconds:.0f} s of CPU time on one thread of the 2-core CI machine ({seconds:.0f} s of wall "
        "time while it ran, which other load on the machine can stretch). Its `comparison.png` "
        "(here at the small size the run also writes, `comparison_small.png`; full size: "
        "[`experiments/main_command/comparison.png`](experiments/main_command/comparison.png)):",
        "",
        "![target | reconstruction | error for the 7 bundled samples](experiments/main_command/comparison_small.png)",
        "",
        "Regenerate this block with `python experiments/main_command/regenerate.py`.",
    ])
    replace_block("main-command", block)
    print("\n".join(summary))
    print(f"CPU time {cpu_seconds:.1f} s, wall time {seconds:.1f} s; README.md updated")


if __name__ == "__main__":
    main()
