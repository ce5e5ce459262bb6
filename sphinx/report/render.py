"""How a report reads: report.md (markdown tables) and report.png (bar charts), from its long table.

The long table has one row per (generator, data, method, degradation, metric): mean, std, n and
the cell's ok/failed image counts, in report order (see :mod:`sphinx.report`).
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import pandas as pd

from sphinx.report.names import (
    DEGRADATION_ORDER,
    LOWER_IS_BETTER,
    METHOD_ORDER,
    METRIC_LABELS,
    METRICS,
    format_metric,
    ordered,
)

if TYPE_CHECKING:
    from sphinx.report.model import Comparison, Report

# Methods whose result is their best image so far rather than their last (ILO keeps its lowest MSE).
KEEPS_BEST = frozenset({"ilo"})


def report_markdown(report: Report, table: pd.DataFrame) -> str:
    """report.md: one methods x degradations table per metric, the image counts, SPHInX against the best
    baseline, the warnings and the sources."""
    sections = list(table.groupby(["generator", "data"], sort=False))
    lines = [
        f"# {report.title}",
        "",
        f"{len(report.sources)} results file(s). Cells are mean ± sample standard deviation (n − 1; a single "
        "image gives ± 0) over the images that finished (status ok); failed images are counted, not averaged. "
        "(n=…) marks a cell where some finished images have no value. Bold is the best method of a column. "
        "Plot: `report.png`; numbers: `report.csv`.",
    ]
    if any(method in KEEPS_BEST for method in table["method"]):
        kept = ", ".join(sorted(set(table["method"]) & KEEPS_BEST))
        lines += ["", f"{kept}: its lowest-MSE image over all steps is scored; every other method's last image."]
    # one heading level deeper when the report holds several generators or data sets
    level = "###" if len(sections) > 1 else "##"
    for (generator, data), section in sections:
        if len(sections) > 1:
            lines += ["", f"## Generator {generator}, data {data}"]
        for metric in METRICS:
            order = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
            values = section[section["metric"] == metric]
            lines += ["", f"{level} {METRIC_LABELS[metric]}, {order}", ""]
            lines += _grid(values, _metric_texts(values, metric))
        counts = section[section["metric"] == METRICS[0]]
        texts = counts["ok"].astype(str) + " ok" + counts["failed"].map(lambda n: f", {n} failed" if n else "")
        lines += ["", f"{level} Images", "", *_grid(counts, texts)]
        lines += ["", f"{level} SPHInX against the best baseline", ""]
        lines += _comparison_table([c for c in report.comparisons if (c.generator, c.data) == (generator, data)])
    if report.warnings:
        lines += ["", "## Warnings", "", *(f"- {warning}" for warning in report.warnings)]
    lines += ["", "## Sources", "", *(f"- `{path}`" for path in report.sources)]
    return "\n".join(lines) + "\n"


def _grid(cells: pd.DataFrame, texts: pd.Series) -> list[str]:
    """A markdown methods x degradations table of ``texts``, one per row of ``cells``."""
    degradations = ordered(cells["degradation"], DEGRADATION_ORDER)
    grid = cells.assign(text=texts).pivot(index="method", columns="degradation", values="text")
    # the rows come in report order, so their methods do too
    grid = grid.reindex(index=cells["method"].unique(), columns=degradations).fillna("")
    return markdown_table(["method", *degradations], grid.reset_index().to_numpy().tolist())


def _metric_texts(cells: pd.DataFrame, metric: str) -> pd.Series:
    """Mean ± std of each cell, bold when best of its column (of two or more), "—" without values."""
    means, stds = cells["mean"].astype(float), cells["std"].astype(float)
    texts = (
        means.map(lambda mean: format_metric(mean, metric)) + " ± " + stds.map(lambda std: format_metric(std, metric))
    )
    column = means.groupby(cells["degradation"])
    best = column.transform("min" if metric in LOWER_IS_BETTER else "max")
    texts = texts.mask((means == best) & (column.transform("count") > 1), "**" + texts + "**")
    # some finished images have no value, e.g. LPIPS unavailable
    texts = texts.mask(cells["n"] != cells["ok"], texts + " (n=" + cells["n"].astype(str) + ")")
    return texts.mask(means.isna(), "—")


def _comparison_table(comparisons: Sequence[Comparison]) -> list[str]:
    if not comparisons:
        return ["No degradation has both a SPHInX method and a baseline with results."]
    rows = []
    for c in comparisons:
        better = "SPHInX" if c.sphinx_better else "tie" if c.difference == 0 else c.baseline_method
        rows.append(
            [
                c.degradation,
                METRIC_LABELS[c.metric],
                f"{c.sphinx_method} {format_metric(c.sphinx_mean, c.metric)}",
                f"{c.baseline_method} {format_metric(c.baseline_mean, c.metric)}",
                format_metric(c.difference, c.metric, signed=True),
                better,
            ]
        )
    return markdown_table(
        ["degradation", "metric", "best SPHInX", "best baseline", "SPHInX − baseline", "better"], rows
    )


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A markdown table's lines; a ``|`` in a cell (an image named ``a|b.png``) is escaped, so
    that it stays in its column."""
    line = lambda cells: "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"
    return [line(header), "|" + "|".join("---" for _ in header) + "|", *(line(row) for row in rows)]


def report_png(report: Report, table: pd.DataFrame) -> bytes:
    """report.png: a bar per method and degradation for each metric, its std as the error bar."""
    # the object API with an explicit Agg canvas: no pyplot state, no change to a notebook backend
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    sections = list(table.groupby(["generator", "data"], sort=False))
    widest = max(section["degradation"].nunique() for _, section in sections)
    figure = Figure(figsize=(max(12.0, 4.2 * widest), 3.8 * len(sections) + 0.8), dpi=110)
    FigureCanvasAgg(figure)
    all_methods = ordered(table["method"], METHOD_ORDER)
    colours = {method: f"C{index % 10}" for index, method in enumerate(all_methods)}
    grid = figure.subplots(len(sections), len(METRICS), squeeze=False)
    for axes, ((generator, data), section) in zip(grid, sections):
        methods, degradations = section["method"].unique(), ordered(section["degradation"], DEGRADATION_ORDER)
        for ax, metric in zip(axes, METRICS):
            values = section[section["metric"] == metric]
            # degradations along x, one bar per method, its std as the error bar
            means, stds = (
                values.pivot(index="degradation", columns="method", values=field)
                .astype(float)
                .reindex(index=degradations, columns=methods)
                for field in ("mean", "std")
            )
            if means.notna().to_numpy().any():
                means.plot.bar(
                    ax=ax,
                    yerr=stds,
                    width=0.8,
                    capsize=3,
                    color=[colours[m] for m in methods],
                    legend=False,
                    rot=0,
                    xlabel="",
                )
            else:
                ax.set_xticks(range(len(degradations)), degradations)
                ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
            ax.set_xlim(-0.5, len(degradations) - 0.5)
            title = f"{METRIC_LABELS[metric]} {'↓' if metric in LOWER_IS_BETTER else '↑'}"
            ax.set_title(title + (f"  ({generator}, {data})" if len(sections) > 1 else ""))
            ax.grid(axis="y", alpha=0.3)
            ax.set_axisbelow(True)
    height = figure.get_figheight()
    figure.suptitle(textwrap.fill(report.title, 150), y=1 - 0.08 / height, va="top", fontsize=11)
    figure.legend(
        handles=[Patch(color=colours[method], label=method) for method in all_methods],
        loc="upper center",
        bbox_to_anchor=(0.5, 1 - 0.38 / height),
        ncol=min(len(all_methods), 8),
        frameon=False,
    )
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.62 / height))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
