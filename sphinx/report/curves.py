"""Quality versus budget across runs: metric-versus-step and metric-versus-seconds curves.

Reads the ``curves.csv`` that every run writes next to its ``results.csv`` (each image's PSNR,
SSIM and LPIPS at log-spaced steps) and writes, into the report folder:

- ``curves.png``: for each metric, the mean over images against optimizer steps (log axis) and
  against seconds per image, one line per method with a band of ± one std over images;
- ``curves.md``: the mean PSNR of every method at a ladder of budgets, the best method at each,
  and where the methods' mean curves cross.

Only numpy and matplotlib are needed.
"""

from __future__ import annotations

import csv
import io
import math
import textwrap
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sphinx.report.names import METHOD_ORDER, METRIC_LABELS, METRICS, order_key
from sphinx.rundir.columns import mean_std

BUDGETS = (10, 30, 100, 300, 1000, 3000, 5000, 8000)
LINE_STYLES = ("-", "--", "-.", ":")


@dataclass(frozen=True)
class MethodCurve:
    """One method's curve under one degradation, aggregated over its images.

    Attributes:
        method, degradation: what ran.
        images: how many images contribute.
        steps: recorded step counts ``[P]``.
        seconds: mean seconds per image at each step ``[P]``.
        mean, std: per metric, the mean and std over images at each step, ``[P]`` each (NaN
            where no image has a value).
    """

    method: str
    degradation: str
    images: int
    steps: np.ndarray
    seconds: np.ndarray
    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]

    def at(self, step: float, metric: str = "psnr") -> float:
        """The mean metric interpolated at ``step`` (log-spaced), NaN beyond the recorded steps."""
        values = self.mean[metric]
        known = np.isfinite(values)
        if not known.any() or step > self.steps[known].max() or step < self.steps[known].min():
            return math.nan
        return float(np.interp(np.log1p(step), np.log1p(self.steps[known]), values[known]))


def read_curves(paths: Sequence[Path]) -> list[MethodCurve]:
    """Aggregate every ``curves.csv`` in ``paths`` by (method, degradation).

    An image seen in several files (a resumed run, a rerun) counts once, from the last file.
    """
    per_image: dict[tuple[str, str], dict[str, dict[int, dict[str, float]]]] = defaultdict(dict)
    for path in paths:
        with open(path, newline="", encoding="utf-8") as stream:
            rows = list(csv.DictReader(stream))
        fresh: dict[tuple[str, str, str], dict[int, dict[str, float]]] = defaultdict(dict)
        for row in rows:
            if any(row.get(name) is None for name in ("step", "seconds", *METRICS)):
                continue  # a truncated last line
            try:
                step = int(row["step"])
            except ValueError:
                continue
            fresh[(row["method"], row["degradation"], row["image"])][step] = {
                name: _number(row.get(name)) for name in ("seconds", *METRICS)
            }
        for (method, degradation, image), points in fresh.items():
            per_image[(method, degradation)][image] = points
    return [
        _aggregate(method, degradation, images)
        for (method, degradation), images in sorted(
            per_image.items(), key=lambda item: (order_key(item[0][0], METHOD_ORDER), item[0][1])
        )
    ]


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _aggregate(method: str, degradation: str, images: dict[str, dict[int, dict[str, float]]]) -> MethodCurve:
    steps = np.array(sorted({step for points in images.values() for step in points}))
    table = {name: np.full((len(images), len(steps)), np.nan) for name in ("seconds", *METRICS)}
    for row, points in enumerate(images.values()):
        for column, step in enumerate(steps):
            for name, value in points.get(int(step), {}).items():
                table[name][row, column] = value
    mean, std = {}, {}
    for name in METRICS:
        mean[name], std[name] = _nan_mean_std(table[name])
    return MethodCurve(method, degradation, len(images), steps, _nan_mean_std(table["seconds"])[0], mean, std)


def _nan_mean_std(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per step (column) of ``[images, steps]``, the mean and std over images; NaN where none has a value."""
    statistics = [mean_std(column.tolist()) for column in values.T]
    return (
        np.array([s.mean if s.n else np.nan for s in statistics], dtype=float),
        np.array([s.std if s.n else 0.0 for s in statistics], dtype=float),
    )


def crossings(first: MethodCurve, second: MethodCurve, metric: str = "psnr") -> list[tuple[float, str]]:
    """Where ``first``'s mean curve crosses ``second``'s, on their common steps.

    Returns:
        ``(step, leader after the crossing)`` for each change of the leading method, the step
        interpolated in log-steps.
    """
    common = np.array(sorted(set(first.steps) | set(second.steps)))
    common = common[(common <= min(first.steps.max(), second.steps.max())) & (common >= 1)]
    difference = np.array([first.at(s, metric) - second.at(s, metric) for s in common])
    if metric == "lpips":
        difference = -difference
    found = []
    for index in range(1, len(common)):
        before, after = difference[index - 1], difference[index]
        if np.isfinite(before) and np.isfinite(after) and (before > 0) != (after > 0) and before != 0:
            share = before / (before - after)
            logs = np.log1p(common[index - 1 : index + 1].astype(float))
            step = float(np.expm1(logs[0] + share * (logs[1] - logs[0])))
            found.append((step, first.method if after > 0 else second.method))
    return found


def first_reaching(curve: MethodCurve, value: float, metric: str = "psnr") -> float | None:
    """The first step at which the mean curve reaches ``value`` (interpolated in log-steps between
    recorded points), or None if it never does within its steps."""
    values, steps = curve.mean[metric], curve.steps
    known = np.isfinite(values)
    values, steps = values[known], steps[known]
    for index, current in enumerate(values):
        if current >= value:
            if index == 0:
                return float(steps[0])
            before = values[index - 1]
            share = (value - before) / (current - before)
            logs = np.log1p(steps[index - 1 : index + 1].astype(float))
            return float(np.expm1(logs[0] + share * (logs[1] - logs[0])))
    return None


def curves_markdown(curves: Sequence[MethodCurve], *, title: str) -> str:
    """The budget table, the best method at each budget, and the crossings, per degradation."""
    lines = [f"# {title}", ""]
    for degradation in dict.fromkeys(c.degradation for c in curves):
        section = [c for c in curves if c.degradation == degradation]
        lines += [
            f"## Degradation: {degradation}",
            "",
            "Mean PSNR (dB) over images after a number of optimizer steps (— beyond a method's step count):",
            "",
        ]
        budgets = [b for b in BUDGETS if any(b <= c.steps.max() for c in section)]
        lines.append("| method | images | " + " | ".join(f"{b} steps" for b in budgets) + " | s/image at the end |")
        lines.append("|---|---|" + "---|" * len(budgets) + "---|")
        for curve in section:
            cells = [_format(curve.at(b)) for b in budgets]
            lines.append(f"| {curve.method} | {curve.images} | " + " | ".join(cells) + f" | {curve.seconds[-1]:.1f} |")
        best = []
        for budget in budgets:
            scored = [(curve.at(budget), curve.method) for curve in section if math.isfinite(curve.at(budget))]
            if scored:
                value, method = max(scored)
                best.append(f"{budget}: {method} ({value:.2f} dB)")
        lines += ["", "Best at each budget: " + "; ".join(best) + ".", "", "Crossings of the mean PSNR curves:", ""]
        described = 0
        for index, first in enumerate(section):
            for second in section[index + 1 :]:
                found = crossings(first, second)
                if found:
                    described += 1
                    steps = ", ".join(f"≈{step:.0f} steps ({leader} ahead after)" for step, leader in found)
                    lines.append(f"- {first.method} vs {second.method}: {steps}")
        if not described:
            lines.append("- none: no two curves cross")
        lines.append("")
    return "\n".join(lines)


def _format(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{value:.2f}"


def curves_png(curves: Sequence[MethodCurve], *, title: str) -> bytes:
    """Mean ± std over images of each metric, against steps and against seconds per image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in METRICS if any(np.isfinite(c.mean[m]).any() for c in curves)]
    degradations = list(dict.fromkeys(c.degradation for c in curves))
    rows = [(d, m) for d in degradations for m in metrics]
    figure, axes = plt.subplots(len(rows), 2, figsize=(12, 3.6 * len(rows)), squeeze=False)
    colours = plt.get_cmap("tab10")
    methods = list(dict.fromkeys(c.method for c in curves))
    for row, (degradation, metric) in enumerate(rows):
        for curve in (c for c in curves if c.degradation == degradation):
            index = methods.index(curve.method)
            # colour and dash both tell methods apart: ten lines stay readable, in print too
            colour, dashes = colours(index % 10), LINE_STYLES[index % len(LINE_STYLES)]
            mean, std = curve.mean[metric], curve.std[metric]
            after_start = curve.steps > 0  # step 0 took no time: it has no place on a log time axis
            for axis, x, keep in ((axes[row, 0], curve.steps, slice(None)), (axes[row, 1], curve.seconds, after_start)):
                label = f"{curve.method} (n={curve.images})"
                axis.plot(x[keep], mean[keep], color=colour, linestyle=dashes, label=label, linewidth=1.8)
                axis.fill_between(
                    x[keep], (mean - std)[keep], (mean + std)[keep], color=colour, alpha=0.15, linewidth=0
                )
        for column, label in enumerate(("optimizer steps", "compute seconds per image")):
            axis = axes[row, column]
            if column == 0:
                axis.set_xscale("symlog", linthresh=1)  # linear from 0 to 1 step, log beyond
            else:
                axis.set_xscale("log")
            axis.set_xlabel(label)
            axis.set_ylabel(METRIC_LABELS[metric])
            axis.set_title(f"{METRIC_LABELS[metric]} vs {label} — {degradation}")
            axis.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    columns = min(len(labels), 5)
    legend_rows = math.ceil(len(labels) / max(columns, 1))
    # below the plots, where no curve runs under it, however many methods there are
    figure.legend(handles, labels, loc="lower center", ncol=columns, fontsize=9, frameon=False, handlelength=3)
    figure.suptitle(textwrap.fill(title, 110))  # long sweep titles would run off the figure
    figure.tight_layout(rect=(0, 0.045 * legend_rows / len(rows) + 0.01, 1, 1))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()
