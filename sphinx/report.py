"""Aggregate the per-image results of any number of runs into a methods x degradations report.

Reads every ``results.csv`` under the given run or multirun directories (and the ``summary.json``
beside it, when the run finished) and writes, into one output folder:

- ``report.md``: one table per metric (rows = methods, columns = degradations, cells mean ± std),
  the image counts, and SPHInX against the best baseline for each degradation and metric;
- ``report.csv``: the same numbers in long format, one row per (cell, metric);
- ``report.png``: grouped bar charts of the PSNR, SSIM and LPIPS means ± std;
- ``curves.md`` and ``curves.png``, when the runs recorded quality curves (``curves.csv``):
  each method's quality against optimizer steps and seconds (:mod:`sphinx.report_curves`).

Usage::

    python -m sphinx.report outputs/multirun/2024-01-01/12-00-00.123456 [more dirs] [--out DIR]

pandas does the tables; what is sphinx's own is the domain: an image a resumed run wrote twice
counts once (the newest row), a run killed mid-line loses only its last row, and SPHInX is set
against the best baseline. It needs no torch, so it runs where torch does not.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import math
import os
import statistics
import sys
import textwrap
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sphinx.errors import SphinxError
from sphinx.files import atomic_write_bytes
from sphinx.report_curves import CURVES_NAME, curves_markdown, curves_png, read_curves

RESULTS_NAME = "results.csv"
SUMMARY_NAME = "summary.json"
RESULTS_COLUMNS = ("image", "method", "degradation", "generator", "psnr", "ssim", "lpips", "vicinity_spread",
                   "steps", "seconds", "status")
STATUSES = ("ok", "failed")
METRICS = ("psnr", "ssim", "lpips")
METRIC_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "lpips": "LPIPS"}
METRIC_DIGITS = {"psnr": 2, "ssim": 4, "lpips": 4}
LOWER_IS_BETTER = frozenset({"lpips"})
REPORT_CSV_COLUMNS = ("generator", "data", "method", "degradation", "metric", "mean", "std", "n")
UNKNOWN_DATA = "unknown"
# Known names come in the order a reader expects; anything else follows, alphabetically.
METHOD_ORDER = ("sphinx", "sphinx_warm", "sphinx_ps", "sphinx_ps_pc", "w", "wplus", "wplus_noise", "pti")
DEGRADATION_ORDER = ("none", "denoise", "inpaint", "superres", "compressed_sensing", "colorize")
_NAMES = ("image", "method", "degradation", "generator")
_CELL_KEY = ["generator", "data", "method", "degradation"]
_MAX_NAMES_IN_WARNING = 5


class ReportError(SphinxError, ValueError):
    """Input the report cannot use: a missing directory, no results, or a malformed results.csv."""


@dataclass(frozen=True)
class Statistic:
    """Mean and sample standard deviation of one metric over the images that have a value.

    ``std`` divides by n - 1; a single value has std 0. Both are None when ``n`` is 0.
    """

    mean: float | None
    std: float | None
    n: int


@dataclass(frozen=True)
class Cell:
    """One (generator, data, method, degradation) aggregate over its distinct images."""

    generator: str
    data: str
    method: str
    degradation: str
    ok: int
    failed: int
    psnr: Statistic
    ssim: Statistic
    lpips: Statistic

    def statistic(self, metric: str) -> Statistic:
        """The statistic of ``metric``, one of ``METRICS``."""
        if metric not in METRICS:
            raise KeyError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
        return getattr(self, metric)


@dataclass(frozen=True)
class Comparison:
    """The best SPHInX method against the best baseline, for one degradation and one metric.

    ``difference`` is SPHInX minus baseline, so it is positive when SPHInX wins on PSNR/SSIM and
    negative when it wins on LPIPS.
    """

    generator: str
    data: str
    degradation: str
    metric: str
    sphinx_method: str
    sphinx_mean: float
    baseline_method: str
    baseline_mean: float
    difference: float

    @property
    def sphinx_better(self) -> bool:
        """Whether SPHInX beats the baseline on this metric (a tie is not a win)."""
        return self.difference < 0 if self.metric in LOWER_IS_BETTER else self.difference > 0


@dataclass(frozen=True)
class Report:
    """The aggregated cells, the comparisons, and where the outputs were written."""

    title: str
    cells: tuple[Cell, ...]
    comparisons: tuple[Comparison, ...]
    sources: tuple[Path, ...]
    warnings: tuple[str, ...]
    markdown: Path
    csv: Path
    png: Path
    curves_markdown: Path | None = None
    curves_png: Path | None = None

    def cell(self, method: str, degradation: str, *, generator: str | None = None, data: str | None = None) -> Cell:
        """The one cell of ``method`` x ``degradation`` (narrowed by generator/data if needed)."""
        found = [cell for cell in self.cells if (cell.method, cell.degradation) == (method, degradation)
                 and generator in (None, cell.generator) and data in (None, cell.data)]
        if len(found) != 1:
            raise KeyError(f"{len(found)} cells match method={method!r} degradation={degradation!r} "
                           f"generator={generator!r} data={data!r}; expected exactly one")
        return found[0]


@dataclass(frozen=True)
class _Run:
    path: Path
    rows: pd.DataFrame  # the names and status as text, the METRICS as floats (NaN: no value)
    experiment: str | None
    data: str | None


def build_report(dirs: Sequence[str | os.PathLike], *, out: str | os.PathLike | None = None) -> Report:
    """Aggregate every results.csv under ``dirs`` and write report.md, report.csv and report.png.

    Args:
        dirs: run or multirun directories, searched recursively (a results.csv file also works).
        out: the folder to write into, created if needed; defaults to the first of ``dirs``.

    Returns:
        The aggregated report, with the paths of the three files written.

    Raises:
        ReportError: a directory that does not exist, no results.csv under ``dirs``, or a
            results.csv with missing columns or unreadable cells.
    """
    if isinstance(dirs, (str, os.PathLike)):
        dirs = [dirs]
    if not dirs:
        raise ReportError("no directory given; point it at a run or multirun directory")
    roots = [Path(d) for d in dirs]
    notes: list[str] = []
    paths = _find_results(roots, notes)
    runs = [_read_run(path, notes) for path in paths]
    cells = _aggregate(runs, notes)
    if not cells:
        raise ReportError(f"no result rows in {', '.join(str(p) for p in paths)}; the runs wrote no image yet")
    title = _title(runs, cells)
    out_dir = Path(out) if out is not None else (roots[0] if roots[0].is_dir() else roots[0].parent)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report(title=title, cells=tuple(cells), comparisons=tuple(_compare(cells)), sources=tuple(paths),
                    warnings=tuple(notes), markdown=out_dir / "report.md", csv=out_dir / "report.csv",
                    png=out_dir / "report.png")
    # atomic: a report being rewritten is never seen half-written by a notebook or a sync job
    atomic_write_bytes(report.markdown, _markdown(report).encode("utf-8"))
    atomic_write_bytes(report.csv, _long_table(report).to_csv(index=False, lineterminator="\n").encode("utf-8"))
    atomic_write_bytes(report.png, _plot(report))
    curve_files = [path.parent / CURVES_NAME for path in paths if (path.parent / CURVES_NAME).is_file()]
    curves = [c for c in read_curves(curve_files) if c.steps.size > 1] if curve_files else []
    if curves:
        report = dataclasses.replace(report, curves_markdown=out_dir / "curves.md", curves_png=out_dir / "curves.png")
        curves_title = f"Quality versus budget: {title}"
        atomic_write_bytes(report.curves_markdown, curves_markdown(curves, title=curves_title).encode("utf-8"))
        atomic_write_bytes(report.curves_png, curves_png(curves, title=curves_title))
    return report


# ---------------------------------------------------------------------------------------------
# reading


def _find_results(roots: Sequence[Path], notes: list[str]) -> list[Path]:
    found: list[Path] = []
    for root in roots:
        if not root.exists():
            raise ReportError(f"no such directory: {root}")
        if root.is_file():
            if root.name != RESULTS_NAME:
                raise ReportError(f"{root} is a file, not a run directory or a {RESULTS_NAME}")
            found.append(root)
        else:
            found.extend(path for path in root.rglob(RESULTS_NAME) if path.is_file())
    if not found:
        where = ", ".join(str(root) for root in roots)
        raise ReportError(f"no {RESULTS_NAME} under {where}; point it at a run or multirun directory")
    unique: dict[Path, Path] = {}
    for path in found:
        if path.resolve() in unique:
            notes.append(f"{path} was reached twice (a directory given twice?); read it once")
        else:
            unique[path.resolve()] = path
    # Oldest first, so that for an image seen twice the newest row wins.
    return sorted(unique.values(), key=lambda p: (p.stat().st_mtime_ns, str(p)))


def _read_run(path: Path, notes: list[str]) -> _Run:
    try:
        with warnings.catch_warnings():  # cells beyond the header are ignored, as a csv reader does
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            table = pd.read_csv(path, dtype=str, keep_default_na=False, index_col=False, encoding="utf-8")
        cut = len(table) > 0 and _last_line_is_cut(path, columns=len(table.columns))
    except pd.errors.EmptyDataError:
        notes.append(f"{path} is empty (a run stopped before its first image?); skipped")
        return _Run(path, pd.DataFrame(columns=[*_NAMES, "status", *METRICS]), None, None)
    except (OSError, UnicodeDecodeError, csv.Error, pd.errors.ParserError) as error:
        raise ReportError(f"cannot read {path}: {error}") from None
    missing = [column for column in RESULTS_COLUMNS if column not in table.columns]
    if missing:
        raise ReportError(f"{path} has a wrong header: missing column(s) {', '.join(missing)}; "
                          f"expected {','.join(RESULTS_COLUMNS)}")
    if cut:  # what a writer killed mid-line leaves behind
        notes.append(f"{path}, line {len(table) + 1}: truncated last row (a killed run?); skipped")
        table = table.iloc[:-1]
    experiment, data = _read_summary(path.parent / SUMMARY_NAME, notes)
    return _Run(path, _parse(table, path, notes), experiment, data)


def _last_line_is_cut(path: Path, *, columns: int) -> bool:
    """Whether the file's last line has fewer cells than its header (pandas fills them in)."""
    last = path.read_text(encoding="utf-8").rstrip("\r\n").rsplit("\n", 1)[-1]
    return len(next(csv.reader([last]), [])) < columns


def _parse(table: pd.DataFrame, path: Path, notes: list[str]) -> pd.DataFrame:
    """The names, status and metric values of a results table, refusing a malformed cell."""
    text = table[list(RESULTS_COLUMNS)].apply(lambda column: column.str.strip())
    lines = np.arange(len(text)) + 2  # the header is line 1
    for column in _NAMES:
        _refuse(text[column].eq("").to_numpy(), path, lines, lambda row, c=column: f"empty {c!r} cell")
    _refuse(~text["status"].isin(STATUSES).to_numpy(), path, lines,
            lambda row: f"status {text['status'].iloc[row]!r} is not one of {', '.join(STATUSES)}")
    metrics = text[list(METRICS)]
    for row, column in np.argwhere(metrics.map(_is_not_a_number).to_numpy())[:1]:
        raise ReportError(f"{path}, line {lines[row]}: {METRICS[column]} {metrics.iat[row, column]!r} is not a number")
    values = metrics.replace("", "nan").astype(float)
    for row, column in np.argwhere(~np.isfinite(values.to_numpy()) & metrics.ne("").to_numpy()):
        notes.append(f"{path}, line {lines[row]}: {METRICS[column]} is {metrics.iat[row, column]}; "
                     f"left out of the mean")
    return pd.concat([text[[*_NAMES, "status"]], values.where(np.isfinite(values))], axis=1)


def _is_not_a_number(text: str) -> bool:
    try:
        return bool(text) and float(text) is None
    except ValueError:
        return True


def _refuse(bad: np.ndarray, path: Path, lines: np.ndarray, reason: Callable[[int], str]) -> None:
    if bad.any():
        row = int(np.argmax(bad))
        raise ReportError(f"{path}, line {lines[row]}: {reason(row)}")


def _read_summary(path: Path, notes: list[str]) -> tuple[str | None, str | None]:
    if not path.is_file():
        return None, None  # an interrupted run: its rows still count
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        notes.append(f"{path} is unreadable ({error}); its run is read from results.csv alone")
        return None, None
    if not isinstance(summary, dict):
        notes.append(f"{path} is not a JSON object; its run is read from results.csv alone")
        return None, None
    named = [summary.get(key) for key in ("experiment", "data")]
    return tuple(value if isinstance(value, str) and value else None for value in named)


# ---------------------------------------------------------------------------------------------
# aggregating


def _aggregate(runs: Sequence[_Run], notes: list[str]) -> list[Cell]:
    data_of = _data_names(runs, notes)
    rows = pd.concat([run.rows.assign(data=data_of[run.path]) for run in runs], ignore_index=True)
    if rows.empty:
        return []
    # runs come oldest first: a resumed or repeated image keeps its newest row
    again = rows[rows.duplicated([*_CELL_KEY, "image"])]
    for (generator, data, method, degradation), images in again.groupby(_CELL_KEY, sort=False)["image"]:
        distinct = sorted(set(images))
        hidden = len(distinct) - _MAX_NAMES_IN_WARNING
        notes.append(f"{len(distinct)} image(s) appear more than once for method {method}, degradation "
                     f"{degradation}, generator {generator}, data {data}: "
                     f"{', '.join(distinct[:_MAX_NAMES_IN_WARNING])}{f' and {hidden} more' if hidden > 0 else ''}; "
                     "counted once, keeping the newest row")
    rows = rows.drop_duplicates([*_CELL_KEY, "image"], keep="last")
    counts = rows.groupby(_CELL_KEY, sort=False)["status"].agg(ok=lambda s: int(s.eq("ok").sum()), total="size")
    values = rows[rows["status"] == "ok"].melt(id_vars=_CELL_KEY, value_vars=list(METRICS), var_name="metric").dropna()
    # the standard library's exactly rounded mean and std: report.csv does not depend on summation order
    stats = values.groupby([*_CELL_KEY, "metric"])["value"].agg(
        n="count", mean=statistics.fmean, std=lambda v: statistics.stdev(v) if len(v) > 1 else 0.0)

    def statistic(key: tuple, metric: str) -> Statistic:
        if (*key, metric) not in stats.index:
            return Statistic(mean=None, std=None, n=0)
        n, mean, std = stats.loc[(*key, metric)]
        return Statistic(mean=float(mean), std=float(std), n=int(n))

    cells = [Cell(*key, ok=int(count.ok), failed=int(count.total - count.ok),
                  **{metric: statistic(key, metric) for metric in METRICS})
             for key, count in counts.iterrows()]
    return sorted(cells, key=lambda c: (c.generator, c.data, _order_key(c.method, METHOD_ORDER),
                                        _order_key(c.degradation, DEGRADATION_ORDER)))


def _data_names(runs: Sequence[_Run], notes: list[str]) -> dict[Path, str]:
    """The data set of each run; an interrupted run has no summary.json to name it.

    Such a run is almost always a job of the same sweep as its neighbours, so it takes the data
    set of the finished runs on its generator when they agree on one; otherwise it is "unknown".
    """
    known: dict[str, set[str]] = {}
    for run in runs:
        if run.data is not None:
            for generator in set(run.rows["generator"]):
                known.setdefault(generator, set()).add(run.data)
    names = {}
    for run in runs:
        candidates = set().union(*(known.get(generator, set()) for generator in set(run.rows["generator"])))
        if run.data is not None:
            names[run.path] = run.data
        elif len(candidates) == 1:
            names[run.path] = candidates.pop()
        else:
            names[run.path] = UNKNOWN_DATA
            if len(run.rows):
                notes.append(f"{run.path} has no {SUMMARY_NAME} to name its data set; "
                             f"listed under data {UNKNOWN_DATA!r}")
    return names


def _order_key(name: str, known: Sequence[str]) -> tuple[int, str]:
    return (known.index(name), "") if name in known else (len(known), name)


def _ordered(names: Iterable[str], known: Sequence[str]) -> list[str]:
    return sorted(set(names), key=lambda name: _order_key(name, known))


def _sections(cells: Sequence[Cell]) -> list[tuple[tuple[str, str], list[Cell]]]:
    sections: dict[tuple[str, str], list[Cell]] = {}
    for cell in cells:
        sections.setdefault((cell.generator, cell.data), []).append(cell)
    return list(sections.items())


def _compare(cells: Sequence[Cell]) -> list[Comparison]:
    comparisons = []
    for (generator, data), section in _sections(cells):
        for degradation in _ordered((c.degradation for c in section), DEGRADATION_ORDER):
            column = [c for c in section if c.degradation == degradation]
            for metric in METRICS:
                sphinx = _best([c for c in column if c.method.startswith("sphinx")], metric)
                baseline = _best([c for c in column if not c.method.startswith("sphinx")], metric)
                if sphinx is None or baseline is None:
                    continue
                sphinx_mean, baseline_mean = sphinx.statistic(metric).mean, baseline.statistic(metric).mean
                comparisons.append(Comparison(
                    generator=generator, data=data, degradation=degradation, metric=metric,
                    sphinx_method=sphinx.method, sphinx_mean=sphinx_mean, baseline_method=baseline.method,
                    baseline_mean=baseline_mean, difference=sphinx_mean - baseline_mean))
    return comparisons


def _best(cells: Sequence[Cell], metric: str) -> Cell | None:
    scored = [c for c in cells if c.statistic(metric).mean is not None]
    if not scored:
        return None
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
    # ties go to the method listed first, so the result does not depend on file order
    return min(scored, key=lambda c: (sign * c.statistic(metric).mean, _order_key(c.method, METHOD_ORDER)))


def _title(runs: Sequence[_Run], cells: Sequence[Cell]) -> str:
    experiments = sorted({run.experiment for run in runs if run.experiment and len(run.rows)})
    methods = _ordered((c.method for c in cells), METHOD_ORDER)
    degradations = _ordered((c.degradation for c in cells), DEGRADATION_ORDER)
    name = ", ".join(experiments) if experiments else "sphinx report"
    # data and generator in pairs, so that several of each still say which went with which
    settings = "; ".join(f"on {data}, generator {generator}" for (generator, data), _ in _sections(cells))
    return f"{name}: {', '.join(methods)} x {', '.join(degradations)} {settings}"


# ---------------------------------------------------------------------------------------------
# writing


def _format(value: float, metric: str, *, signed: bool = False) -> str:
    return f"{value:{'+' if signed else ''}.{METRIC_DIGITS[metric]}f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _markdown(report: Report) -> str:
    sections = _sections(report.cells)
    lines = [
        f"# {report.title}",
        "",
        f"{len(report.sources)} results file(s). Cells are mean ± sample standard deviation "
        "(n − 1; a single image gives ± 0) over the images that finished (status ok); failed "
        "images are counted, not averaged. (n=…) marks a cell where some finished images have "
        "no value. Bold is the best method of a column. Plot: `report.png`; numbers: "
        "`report.csv`.",
    ]
    # one heading level deeper when the report holds several generators or data sets
    level = "###" if len(sections) > 1 else "##"
    for (generator, data), section in sections:
        if len(sections) > 1:
            lines += ["", f"## Generator {generator}, data {data}"]
        for metric in METRICS:
            order = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
            lines += ["", f"{level} {METRIC_LABELS[metric]}, {order}", ""]
            lines += _grid(section, lambda cell, column, m=metric: _metric_text(cell, column, m))
        lines += ["", f"{level} Images", ""]
        lines += _grid(section, lambda cell, column: f"{cell.ok} ok" + (f", {cell.failed} failed" if cell.failed else ""))
        lines += ["", f"{level} SPHInX against the best baseline", ""]
        lines += _comparison_table([c for c in report.comparisons if (c.generator, c.data) == (generator, data)])
    if report.warnings:
        lines += ["", "## Warnings", "", *(f"- {warning}" for warning in report.warnings)]
    lines += ["", "## Sources", "", *(f"- `{path}`" for path in report.sources)]
    return "\n".join(lines) + "\n"


def _grid(section: Sequence[Cell], text: Callable[[Cell, list[Cell]], str]) -> list[str]:
    """A methods x degradations table; ``text`` renders a cell given its degradation's column."""
    methods = _ordered((c.method for c in section), METHOD_ORDER)
    degradations = _ordered((c.degradation for c in section), DEGRADATION_ORDER)
    columns = {d: [c for c in section if c.degradation == d] for d in degradations}
    texts = pd.DataFrame([(c.method, c.degradation, text(c, columns[c.degradation])) for c in section],
                         columns=["method", "degradation", "text"])
    grid = texts.pivot(index="method", columns="degradation", values="text")
    grid = grid.reindex(index=methods, columns=degradations).fillna("")
    return _table(["method", *degradations], ([method, *row] for method, row in zip(methods, grid.to_numpy().tolist())))


def _metric_text(cell: Cell, column: list[Cell], metric: str) -> str:
    stat = cell.statistic(metric)
    if stat.mean is None:
        return "—"
    text = f"{_format(stat.mean, metric)} ± {_format(stat.std, metric)}"
    scored = [c for c in column if c.statistic(metric).mean is not None]
    if len(scored) > 1 and stat.mean == _best(scored, metric).statistic(metric).mean:
        text = f"**{text}**"
    if stat.n != cell.ok:
        text += f" (n={stat.n})"  # some finished images have no value, e.g. LPIPS unavailable
    return text


def _comparison_table(comparisons: Sequence[Comparison]) -> list[str]:
    if not comparisons:
        return ["No degradation has both a SPHInX method and a baseline with results."]
    rows = []
    for c in comparisons:
        better = "SPHInX" if c.sphinx_better else "tie" if c.difference == 0 else c.baseline_method
        rows.append([c.degradation, METRIC_LABELS[c.metric], f"{c.sphinx_method} {_format(c.sphinx_mean, c.metric)}",
                     f"{c.baseline_method} {_format(c.baseline_mean, c.metric)}",
                     _format(c.difference, c.metric, signed=True), better])
    return _table(["degradation", "metric", "best SPHInX", "best baseline", "SPHInX − baseline", "better"], rows)


def _long_table(report: Report) -> pd.DataFrame:
    """One row per (cell, metric): the numbers of report.csv."""
    rows = [(c.generator, c.data, c.method, c.degradation, metric, s.mean, s.std, s.n)
            for c in report.cells for metric in METRICS for s in [c.statistic(metric)]]
    return pd.DataFrame(rows, columns=list(REPORT_CSV_COLUMNS))


def _plot(report: Report) -> bytes:
    # the object API with an explicit Agg canvas: no pyplot state, no change to a notebook backend
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    sections = _sections(report.cells)
    widest = max(len({c.degradation for c in section}) for _, section in sections)
    figure = Figure(figsize=(max(12.0, 4.2 * widest), 3.8 * len(sections) + 0.8), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(sections), len(METRICS), squeeze=False)
    all_methods = _ordered((c.method for c in report.cells), METHOD_ORDER)
    colours = {method: f"C{index % 10}" for index, method in enumerate(all_methods)}
    table = _long_table(report)
    for row, ((generator, data), section) in enumerate(sections):
        methods = _ordered((c.method for c in section), METHOD_ORDER)
        degradations = _ordered((c.degradation for c in section), DEGRADATION_ORDER)
        for column, metric in enumerate(METRICS):
            ax = axes[row][column]
            values = table[(table["generator"] == generator) & (table["data"] == data) & (table["metric"] == metric)]
            # degradations along x, one bar per method, its std as the error bar
            means, stds = (values.pivot(index="degradation", columns="method", values=field).astype(float)
                           .reindex(index=degradations, columns=methods) for field in ("mean", "std"))
            if means.notna().to_numpy().any():
                means.plot.bar(ax=ax, yerr=stds, width=0.8, capsize=3, color=[colours[m] for m in methods],
                               legend=False, rot=0, xlabel="")
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
    figure.legend(handles=[Patch(color=colours[method], label=method) for method in all_methods],
                  loc="upper center", bbox_to_anchor=(0.5, 1 - 0.38 / height), ncol=min(len(all_methods), 8),
                  frameon=False)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.62 / height))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sphinx.report",
        description=("Aggregate the results.csv of run or multirun directories into report.md, report.csv and "
                     "report.png: methods x degradations, mean ± std of PSNR, SSIM and LPIPS, and SPHInX against "
                     "the best baseline."))
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="run or multirun directories")
    parser.add_argument("--out", metavar="DIR", help="where to write the report (default: the first DIR)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 for bad input, 1 if writing fails)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # argparse has printed its usage message
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        report = build_report(args.dirs, out=args.out)
    except ReportError as error:
        print(f"sphinx.report: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"sphinx.report: error: cannot write the report: {error}", file=sys.stderr)
        return 1
    for warning in report.warnings:
        print(f"sphinx.report: warning: {warning}", file=sys.stderr)
    print(report.markdown.read_text(encoding="utf-8"), end="")
    written = [report.markdown, report.csv, report.png, report.curves_markdown, report.curves_png]
    print(f"\nwrote {', '.join(str(path) for path in written if path is not None)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
