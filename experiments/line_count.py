"""Counts the lines of `sphinx/` across the architecture work of issue 18, like for like.

Issue 18 asks that the refactor of the layer around the core not grow `sphinx/`. The refactor
landed in steps, and features (issues 19-22) landed between them, so the count at HEAD against
the count before the refactor mixes the two. This script measures each stretch of history on its
own: the refactor's stretches (whose net is the acceptance measure) and, for transparency, what
the features in between added. Each commit's `sphinx/**/*.py` is formatted with the repository's ruff
settings before counting, because the refactor's own formatting step (ruff, applied to the whole
tree) would otherwise count as growth.

Usage (in a clone with its history): python experiments/line_count.py
"""

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The refactor's stretches of history: (start, end, what). The trim branch forked at 53b56c0 and
# merged in ccac565; everything else between the stretches is features and their review mends.
REFACTOR_STRETCHES = [
    ("751bd92", "111b8f5", "first pass: method object, one loop, packages, entry points, README"),
    ("53b56c0", "23f6b61", "trim: single-use helpers inlined, GANSettings, emoji ranges"),
    ("4b8d6af", "HEAD", "consolidation pass"),
]
BASE, LATEST = "751bd92", "HEAD"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def formatted_line_count(commit: str) -> int:
    """Lines of sphinx/**/*.py at `commit`, after ruff format with the settings of the working tree."""
    files = [f for f in git("ls-tree", "-r", "--name-only", commit, "sphinx").split() if f.endswith(".py")]
    with tempfile.TemporaryDirectory() as scratch:
        for name in files:
            target = Path(scratch, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(git("show", f"{commit}:{name}"))
        ruff = [sys.executable, "-m", "ruff", "format", "--quiet", "--config", str(ROOT / "pyproject.toml"), scratch]
        subprocess.run(ruff, check=True)
        return sum(len(Path(scratch, name).read_text().splitlines()) for name in files)


def main() -> None:
    commits = {BASE, LATEST} | {commit for start, end, _ in REFACTOR_STRETCHES for commit in (start, end)}
    counts = {commit: formatted_line_count(commit) for commit in commits}
    print("| refactor stretch | commits | lines of sphinx/ | change |")
    print("|---|---|---|---|")
    refactor = 0
    for start, end, what in REFACTOR_STRETCHES:
        change = counts[end] - counts[start]
        refactor += change
        print(f"| {what} | {start}..{end} | {counts[start]} -> {counts[end]} | {change:+d} |")
    total = counts[LATEST] - counts[BASE]
    print(f"\nsphinx/ from {BASE} to {LATEST}: {counts[BASE]} -> {counts[LATEST]} ({total:+d} lines)")
    print(f"  features and their mends (issues 19-22): {total - refactor:+d}")
    print(f"  refactor net (the acceptance measure, must be <= 0): {refactor:+d}")


if __name__ == "__main__":
    main()
