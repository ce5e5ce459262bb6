"""Whether a learned attribute direction beat its control: the same run with the direction frozen.

Read from the rows of an edit's results (``achieved_error`` and ``control_achieved_error``, see
:func:`sphinx.editing.attribute_measures`), by the edit writer's summary, ``sphinx.edit``'s last
lines and ``sphinx.report``; plain Python, so the report needs no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from sphinx.rundir.columns import mean_std


def compare_with_control(records: Sequence[dict]) -> dict:
    """Whether learning the direction beat its control (the direction frozen at its random start).

    Args:
        records: per-image rows with ``achieved_error`` and ``control_achieved_error`` (images
            without both are left out), and optionally ``psnr_heldout`` and its control.

    Returns:
        ``images`` compared, ``beats`` (images whose learned walk achieves the asked amounts
        more closely than the control's), the mean achieved errors and held-out PSNRs of both, and
        ``learned``: True only when the learned walk is closer on every compared image.
    """
    rows = [r for r in records if _finite(r.get("achieved_error")) and _finite(r.get("control_achieved_error"))]
    beats = sum(r["achieved_error"] < r["control_achieved_error"] for r in rows)
    mean = lambda key: mean_std(r.get(key) for r in rows).mean
    return {
        "images": len(rows),
        "beats": beats,
        "learned_error": mean("achieved_error"),
        "control_error": mean("control_achieved_error"),
        "learned_psnr_heldout": mean("psnr_heldout"),
        "control_psnr_heldout": mean("control_psnr_heldout"),
        "learned": bool(rows) and beats == len(rows),
    }


def describe_comparison(transform: str, comparison: dict, unit: str = "") -> str:
    """One line for a :func:`compare_with_control` result."""
    n, beats = comparison["images"], comparison["beats"]
    if n == 0:
        return f"{transform}: no control run to compare with"
    verdict = "the learned direction" if comparison["learned"] else "no evidence that the direction was learned: it"
    line = (
        f"{transform}: {verdict} beats its frozen control on {beats} of {n} images "
        f"(achieved error {comparison['learned_error']:.3g}{unit} vs {comparison['control_error']:.3g}{unit}"
    )
    if comparison["learned_psnr_heldout"] is not None and comparison["control_psnr_heldout"] is not None:
        line += (
            f"; held-out PSNR {comparison['learned_psnr_heldout']:.2f} vs {comparison['control_psnr_heldout']:.2f} dB"
        )
    return line + ")"


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
