"""Write the budget report's headline into README.md (the ``budget`` block): the mean-PSNR table,
the best method at each budget and every method's crossings with W+, taken from
``experiments/budget/curves.md`` as ``sphinx.report`` wrote it; then, from the runs' curves
(``experiments/budget/curves/<method>.csv``), the step at which each method's mean PSNR first
reaches the authors' ``sphinx`` at 5000 steps, and which samples and steps the report covers.

    python experiments/budget/readme.py      (run.sh calls it after the report)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from readme_block import replace_block  # noqa: E402

from sphinx.report.curves import first_reaching, read_curves  # noqa: E402

HERE = Path(__file__).resolve().parent
BASELINE = "wplus"
REFERENCE, REFERENCE_STEPS = "sphinx", 5000


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


def reaching(curve_files: list[Path]) -> str:
    """When each method's mean PSNR first reaches the authors' sphinx at 5000 steps."""
    curves = [c for c in read_curves(curve_files) if c.degradation == "none"]
    reference = next((c for c in curves if c.method == REFERENCE and c.steps.max() >= REFERENCE_STEPS), None)
    if reference is None:
        return f"(no {REFERENCE} run to {REFERENCE_STEPS} steps yet: the line to reach is not known)"
    line = reference.at(REFERENCE_STEPS)
    rows = [
        f"The authors' `{REFERENCE}` reaches {line:.2f} dB at {REFERENCE_STEPS} steps (mean over its "
        f"{reference.images} images). Steps at which each method's mean first reaches it:",
        "",
        "| method | images | steps run | steps to reach it |",
        "|---|---|---|---|",
    ]
    for curve in curves:
        step = first_reaching(curve, line)
        reached = f"≈{step:.0f}" if step is not None else "not within its budget"
        rows.append(f"| {curve.method} | {curve.images} | {int(curve.steps.max())} | {reached} |")
    return "\n".join(rows)


if __name__ == "__main__":
    files = sorted((HERE / "curves").glob("*.csv"))
    text = headline((HERE / "curves.md").read_text(encoding="utf-8"))
    replace_block("budget", text + ("\n\n" + reaching(files) if files else ""))
