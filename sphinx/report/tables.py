"""Aggregate the per-image results of any number of runs into a methods x degradations report.

pandas does the tables; sphinx's own is the domain: an image a resumed run wrote twice counts once
(the newest row), a run killed mid-line loses only its last row, and SPHInX is set against the
best baseline. The drawing is :mod:`sphinx.report.render`'s, the curves :mod:`sphinx.report.curves`'.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from collections import deque
from collections.abc import Sequence
from itertools import groupby
from pathlib import Path

import pandas as pd

from sphinx.report.curves import curves_markdown, curves_png, read_curves
from sphinx.report.edits import build_edit_report, is_edit_results
from sphinx.report.model import Cell, Comparison, Report, ReportError
from sphinx.report.names import DEGRADATION_ORDER, LOWER_IS_BETTER, METHOD_ORDER, METRICS, order_key, ordered
from sphinx.report.render import report_markdown, report_png
from sphinx.rundir.columns import (
    CURVES_FILE,
    ID_COLUMNS,
    NAME_COLUMNS,
    RESULT_COLUMNS,
    RESULTS_FILE,
    STATUSES,
    SUMMARY_FILE,
    mean_std,
    read_text_table,
)
from sphinx.utils.files import atomic_write_bytes, read_json

RESULTS_COLUMNS = RESULT_COLUMNS
REPORT_CSV_COLUMNS = ("generator", "data", "method", "degradation", "metric", "mean", "std", "n")
UNKNOWN_DATA = "unknown"
_CELL_KEY = ["generator", "data", "method", "degradation"]
_MAXNAME_COLUMNS_IN_WARNING = 5


def build_report(dirs: Sequence[str | os.PathLike], *, out: str | os.PathLike | None = None) -> Report:
    """Aggregate every results.csv under ``dirs`` and write report.md, report.csv and report.png.

    Args:
        dirs: run or multirun directories, searched recursively (a results.csv file also works);
            ``sphinx.edit`` runs among them get their own report (:mod:`sphinx.report.edits`).
        out: the folder to write into, created if needed; defaults to the first of ``dirs``.

    Returns:
        The aggregated report, with the paths of the files written.

    Raises:
        ReportError: a missing directory, no results.csv under ``dirs``, or a malformed results.csv.
    """
    roots = [Path(dirs)] if isinstance(dirs, (str, os.PathLike)) else [Path(d) for d in dirs]
    if not roots:
        raise ReportError("no directory given; point it at a run or multirun directory")
    notes: list[str] = []
    paths = _find_results(roots, notes)
    out_dir = Path(out) if out is not None else (roots[0] if roots[0].is_dir() else roots[0].parent)
    edit_paths = [path for path in paths if is_edit_results(path)]
    paths = [path for path in paths if path not in edit_paths]
    if edit_paths:
        out_dir.mkdir(parents=True, exist_ok=True)
        edits = build_edit_report(edit_paths, out_dir)
        if not paths:  # only edit runs: their report is the report
            empty = dict(cells=(), comparisons=(), sources=tuple(edit_paths), warnings=tuple(notes))
            return Report(edits.title, **empty, markdown=edits.markdown, csv=edits.csv, png=edits.png, edits=edits)
    runs = [run for run in (_read_run(path, notes) for path in paths) if len(run)]
    if not runs:
        raise ReportError(f"no result rows in {', '.join(map(str, paths))}; the runs wrote no image yet")
    rows = _name_data(pd.concat(runs, ignore_index=True), notes)
    cells = _aggregate(rows, notes)
    table = _long_table(cells)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report(
        title=_title(rows, cells),
        cells=tuple(cells),
        comparisons=tuple(_compare(cells)),
        sources=tuple(paths),
        warnings=tuple(notes),
        markdown=out_dir / "report.md",
        csv=out_dir / "report.csv",
        png=out_dir / "report.png",
        edits=edits if edit_paths else None,
    )
    # atomic: a report being rewritten is never seen half-written by a notebook or a sync job
    atomic_write_bytes(report.markdown, report_markdown(report, table).encode("utf-8"))
    atomic_write_bytes(report.csv, table[list(REPORT_CSV_COLUMNS)].to_csv(index=False, lineterminator="\n").encode())
    atomic_write_bytes(report.png, report_png(report, table))
    curve_files = [path.parent / CURVES_FILE for path in paths if (path.parent / CURVES_FILE).is_file()]
    curves = [c for c in read_curves(curve_files) if c.steps.size > 1] if curve_files else []
    if curves:
        report = dataclasses.replace(report, curves_markdown=out_dir / "curves.md", curves_png=out_dir / "curves.png")
        curves_title = f"Quality versus budget: {report.title}"
        atomic_write_bytes(report.curves_markdown, curves_markdown(curves, title=curves_title).encode("utf-8"))
        atomic_write_bytes(report.curves_png, curves_png(curves, title=curves_title))
    return report


def _find_results(roots: Sequence[Path], notes: list[str]) -> list[Path]:
    """Each results.csv under ``roots`` once, oldest first: for an image seen twice the newest row wins."""
    unique: dict[Path, Path] = {}
    for root in roots:
        if not root.exists():
            raise ReportError(f"no such directory: {root}")
        if root.is_file() and root.name != RESULTS_FILE:
            raise ReportError(f"{root} is a file, not a run directory or a {RESULTS_FILE}")
        for path in [root] if root.is_file() else [p for p in root.rglob(RESULTS_FILE) if p.is_file()]:
            if path.resolve() in unique:
                notes.append(f"{path} was reached twice (a directory given twice?); read it once")
            unique.setdefault(path.resolve(), path)
    if not unique:
        where = ", ".join(str(root) for root in roots)
        raise ReportError(f"no {RESULTS_FILE} under {where}; point it at a run or multirun directory")
    return sorted(unique.values(), key=lambda p: (p.stat().st_mtime_ns, str(p)))


def _read_run(path: Path, notes: list[str]) -> pd.DataFrame:
    """The rows of one results.csv, with its path and its run's experiment and data set (None: unknown)."""
    try:
        table = read_text_table(path)
        # pandas fills a short row in; a writer killed mid-line leaves one as the last. Read as CSV
        # records, not lines: a quoted cell may hold a line break.
        with open(path, newline="", encoding="utf-8") as stream:
            last = deque(csv.reader(stream), maxlen=1)
        cut = len(table) > 0 and bool(last) and len(last[0]) < len(table.columns)
    except pd.errors.EmptyDataError:
        notes.append(f"{path} is empty (a run stopped before its first image?); skipped")
        return pd.DataFrame()
    except (OSError, UnicodeDecodeError, csv.Error, pd.errors.ParserError) as error:
        raise ReportError(f"cannot read {path}: {error}") from None
    missing = [column for column in RESULTS_COLUMNS if column not in table.columns]
    if missing:
        raise ReportError(
            f"{path} has a wrong header: missing column(s) {', '.join(missing)}; expected {','.join(RESULTS_COLUMNS)}"
        )
    if cut:
        notes.append(f"{path}, line {len(table) + 1}: truncated last row (a killed run?); skipped")
        table = table.iloc[:-1]
    experiment, data = _read_summary(path.parent / SUMMARY_FILE, notes)
    return _parse(table, path, notes).assign(experiment=experiment, data=data, source=str(path))


def _parse(table: pd.DataFrame, path: Path, notes: list[str]) -> pd.DataFrame:
    """The names, status and metric values of a results table, refusing a malformed cell."""
    # an image id is kept whole (a file name may start or end with a space); other cells are trimmed
    text = table[list(RESULTS_COLUMNS)].apply(
        lambda column: column if column.name in ID_COLUMNS else column.str.strip()
    )
    # rows are numbered from 0 and the header is line 1: row i is on line i + 2
    for column in NAME_COLUMNS:
        if text[column].eq("").any():
            raise ReportError(f"{path}, line {text[column].eq('').idxmax() + 2}: empty {column!r} cell")
    if not text["status"].isin(STATUSES).all():
        row = (~text["status"].isin(STATUSES)).idxmax()
        raise ReportError(f"{path}, line {row + 2}: status {text['status'][row]!r} is not one of {', '.join(STATUSES)}")
    values = [
        [_value(cell, f"{path}, line {row + 2}: {metric}", notes) for metric, cell in zip(METRICS, cells)]
        for row, cells in zip(text.index, text[list(METRICS)].itertuples(index=False))
    ]
    return text[[*NAME_COLUMNS, "status"]].join(
        pd.DataFrame(values, index=text.index, columns=list(METRICS), dtype=float)
    )


def _value(cell: str, where: str, notes: list[str]) -> float:
    """A metric cell as a number: NaN when empty or not finite (noted), an error when not a number."""
    try:
        value = float(cell) if cell else math.nan
    except ValueError:
        raise ReportError(f"{where} {cell!r} is not a number") from None
    if cell and not math.isfinite(value):
        notes.append(f"{where} is {cell}; left out of the mean")
        return math.nan
    return value


def _read_summary(path: Path, notes: list[str]) -> tuple[str | None, str | None]:
    """The experiment and data set that a finished run's summary.json names."""
    if not path.is_file():
        return None, None  # an interrupted run: its rows still count
    try:
        summary = read_json(path)
        problem = None if isinstance(summary, dict) else "is not a JSON object"
    except ValueError as error:
        problem = f"is {error}"
    if problem is not None:
        notes.append(f"{path} {problem}; its run is read from results.csv alone")
        return None, None
    named = [summary.get(key) for key in ("experiment", "data")]
    return tuple(value if isinstance(value, str) and value else None for value in named)


def _name_data(rows: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """``rows`` with the data set of each interrupted run (no summary.json) filled in.

    Such a run is almost always a job of the same sweep as its neighbours, so it takes the data
    set of the finished runs on its generator when they agree on one; otherwise it is "unknown".
    """
    known = rows.dropna(subset=["data"]).groupby("generator")["data"].agg(set)
    for source, run in rows[rows["data"].isna()].groupby("source", sort=False):
        candidates = set().union(*(known.get(generator, set()) for generator in run["generator"].unique()))
        if len(candidates) == 1:
            rows.loc[run.index, "data"] = candidates.pop()
        else:
            rows.loc[run.index, "data"] = UNKNOWN_DATA
            notes.append(f"{source} has no {SUMMARY_FILE} to name its data set; listed under data {UNKNOWN_DATA!r}")
    return rows


def _aggregate(rows: pd.DataFrame, notes: list[str]) -> list[Cell]:
    """One cell per (generator, data, method, degradation), in report order, counting each image once."""
    # runs come oldest first: a resumed or repeated image keeps its newest row
    again = rows[rows.duplicated([*_CELL_KEY, "image"])]
    for (generator, data, method, degradation), images in again.groupby(_CELL_KEY, sort=False)["image"]:
        distinct = sorted(set(images))
        hidden = len(distinct) - _MAXNAME_COLUMNS_IN_WARNING
        notes.append(
            f"{len(distinct)} image(s) appear more than once for method {method}, degradation "
            f"{degradation}, generator {generator}, data {data}: "
            f"{', '.join(distinct[:_MAXNAME_COLUMNS_IN_WARNING])}{f' and {hidden} more' if hidden > 0 else ''}; "
            "counted once, keeping the newest row"
        )
    cells = []
    for key, images in rows.drop_duplicates([*_CELL_KEY, "image"], keep="last").groupby(_CELL_KEY):
        ok = images[images["status"] == "ok"]
        metrics = {metric: mean_std(ok[metric].dropna().tolist()) for metric in METRICS}
        cells.append(Cell(*key, ok=len(ok), failed=len(images) - len(ok), **metrics))
    return sorted(
        cells,
        key=lambda c: (
            c.generator,
            c.data,
            order_key(c.method, METHOD_ORDER),
            order_key(c.degradation, DEGRADATION_ORDER),
        ),
    )


def _compare(cells: Sequence[Cell]) -> list[Comparison]:
    comparisons = []
    by_column = sorted(cells, key=lambda c: (c.generator, c.data, order_key(c.degradation, DEGRADATION_ORDER)))
    for (generator, data, degradation), column in groupby(by_column, lambda c: (c.generator, c.data, c.degradation)):
        column = list(column)
        for metric in METRICS:
            sphinx = _best([c for c in column if c.method.startswith("sphinx")], metric)
            baseline = _best([c for c in column if not c.method.startswith("sphinx")], metric)
            if sphinx is not None and baseline is not None:
                sphinx_mean, baseline_mean = sphinx.statistic(metric).mean, baseline.statistic(metric).mean
                comparisons.append(
                    Comparison(
                        generator=generator,
                        data=data,
                        degradation=degradation,
                        metric=metric,
                        sphinx_method=sphinx.method,
                        sphinx_mean=sphinx_mean,
                        baseline_method=baseline.method,
                        baseline_mean=baseline_mean,
                        difference=sphinx_mean - baseline_mean,
                    )
                )
    return comparisons


def _best(cells: Sequence[Cell], metric: str) -> Cell | None:
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
    # ties go to the method listed first, so the result does not depend on file order
    return min(
        (c for c in cells if c.statistic(metric).mean is not None),
        default=None,
        key=lambda c: (sign * c.statistic(metric).mean, order_key(c.method, METHOD_ORDER)),
    )


def _title(rows: pd.DataFrame, cells: Sequence[Cell]) -> str:
    experiments = ", ".join(sorted(set(rows["experiment"].dropna()))) or "sphinx report"
    methods = ", ".join(ordered((c.method for c in cells), METHOD_ORDER))
    degradations = ", ".join(ordered((c.degradation for c in cells), DEGRADATION_ORDER))
    # data and generator in pairs, so that several of each still say which went with which
    settings = "; ".join(dict.fromkeys(f"on {c.data}, generator {c.generator}" for c in cells))
    return f"{experiments}: {methods} x {degradations} {settings}"


def _long_table(cells: Sequence[Cell]) -> pd.DataFrame:
    """One row per (cell, metric): the numbers of report.csv, then the cell's image counts."""
    rows = [
        (c.generator, c.data, c.method, c.degradation, metric, s.mean, s.std, s.n, c.ok, c.failed)
        for c in cells
        for metric in METRICS
        for s in [c.statistic(metric)]
    ]
    return pd.DataFrame(rows, columns=[*REPORT_CSV_COLUMNS, "ok", "failed"])
