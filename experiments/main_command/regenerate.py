"""Runs the README's three commands and rewrites the README block that shows what they print.

    python experiments/main_command/regenerate.py

It runs the main job ``python -m sphinx.run +experiment=ood_faces``, the edit ``python -m
sphinx.edit +experiment=edit_rotate`` and ``python -m sphinx.report`` over the main job's run dir,
exactly as a user types them (both experiments run on one CPU thread through their ``threads: 1``,
so the numbers are a fresh clone's, whatever its core count); copies the main job's comparison
pictures next to this script; and replaces the text between the ``main-command`` markers in
README.md with the end of each command's output and the CPU time of the two jobs. Nothing in that
block is written by hand.
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
from readme_block import replace_block  # noqa: E402


def run(*args: str) -> tuple[list[str], float]:
    """A command's non-empty output lines and its CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    finished = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if finished.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{finished.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return [line for line in finished.stdout.splitlines() if line.strip()], cpu


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        main_dir, edit_dir = Path(scratch) / "main", Path(scratch) / "rotate"
        main_lines, main_cpu = run("-m", "sphinx.run", "+experiment=ood_faces", f"hydra.run.dir={main_dir}")
        edit_lines, edit_cpu = run("-m", "sphinx.edit", "+experiment=edit_rotate", f"hydra.run.dir={edit_dir}")
        report_lines, _ = run("-m", "sphinx.report", str(main_dir))
        shutil.copyfile(main_dir / "comparison_small.png", HERE / "comparison_small.png")
        shutil.copyfile(main_dir / "comparison.png", HERE / "comparison.png")
    shown = lambda lines, where: [*lines[:-1], lines[-1].replace(str(main_dir), where).replace(str(edit_dir), where)]
    psnr_table = report_lines[report_lines.index(next(line for line in report_lines if line.startswith("## PSNR"))) :][
        :4
    ]
    block = "\n".join(
        [
            "What they print at the end, on one CPU thread (`threads: 1`, set by the demo experiments; other",
            "CPUs, or other thread counts through `threads=N`, move the last digits):",
            "",
            "```",
            "$ make demo",
            *shown(main_lines[-2:], "outputs/ood_faces/<date>"),
            "$ python -m sphinx.edit +experiment=edit_rotate",
            *shown(edit_lines[-3:], "outputs/edit_rotate/<date>"),  # its summary, the control verdict, the path
            "$ python -m sphinx.report outputs/ood_faces/<date>",
            *psnr_table,
            "```",
            "",
            f"The main job took {main_cpu:.0f} s of CPU time, the edit {edit_cpu:.0f} s, on this project's 2-core x86_64",
            "machine. The picture above is the main",
            "job's `comparison_small.png` (full size: [`experiments/main_command/comparison.png`]"
            "(experiments/main_command/comparison.png)). Regenerate this block with",
            "`python experiments/main_command/regenerate.py`.",
        ]
    )
    replace_block("main-command", block)
    print(block)


if __name__ == "__main__":
    main()
