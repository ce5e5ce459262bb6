"""Write the budget report's headline into README.md (the ``budget`` block): the mean-PSNR table,
the best method at each budget and every method's crossings with W+, all taken from
``experiments/budget/curves.md`` as ``sphinx.report`` wrote it.

    python experiments/budget/readme.py      (run.sh calls it after the report)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from readme_block import replace_block  # noqa: E402

HERE = Path(__file__).resolve().parent
BASELINE = "wplus"


def headline(curves_md: str) -> str:
    lines = curves_md.splitlines()
    table = [line for line in lines if line.startswith("|")]
    best = [line for line in lines if line.startswith("Best at each budget")]
    versus = [
        line
        for line in lines
        if line.startswith("- ") and (f" vs {BASELINE}:" in line or line.startswith(f"- {BASELINE} vs "))
    ]
    return "\n".join([*table, "", *best, "", f"Where the mean curves cross W+ ({BASELINE}):", "", *versus])


if __name__ == "__main__":
    replace_block("budget", headline((HERE / "curves.md").read_text(encoding="utf-8")))
