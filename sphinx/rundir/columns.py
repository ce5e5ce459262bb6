"""The columns of a run dir's tables, how a value is written into a cell, and how tables are read back.

Writers (:mod:`sphinx.rundir.writer`), loggers (:mod:`sphinx.lit.loggers`) and the report
(:mod:`sphinx.report`) all take their column names, cell format, statistics and reader from here.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sphinx.utils.text import image_id_to_text, one_line

if TYPE_CHECKING:
    import pandas as pd

RESULTS_FILE = "results.csv"
CURVES_FILE = "curves.csv"
SUMMARY_FILE = "summary.json"
FAILURES_FILE = "failures.csv"

NAME_COLUMNS = ("image", "method", "degradation", "generator")
SCORES = ("psnr", "ssim", "lpips")
METRICS = (*SCORES, "vicinity_spread")
STATUSES = ("ok", "failed")
# sphinx.run's results.csv: one row per image
RESULT_COLUMNS = (*NAME_COLUMNS, *METRICS, "steps", "seconds", "status")
# curves.csv: one row per (image, recorded step)
CURVE_COLUMNS = (*NAME_COLUMNS, "step", "seconds", *SCORES)
# sphinx.edit's results.csv: these first and last, and between them whatever its records measure
EDIT_LEADING_COLUMNS = ("image", "edit", "method", "generator")
EDIT_TRAILING_COLUMNS = ("steps", "seconds", "status", "message")
# Record keys that are bookkeeping, never a column.
RECORD_ONLY = ("index", "stem", "degradation", "curve", "retry")
# Columns that hold image ids, written in their text form (sphinx.utils.text.image_id_to_text): one
# printable line whatever bytes a file name holds, read back exactly by image_id_from_text.
ID_COLUMNS = ("image", "first", "second")
# Columns that hold names, even when every name looks like a number (an image called "1") or none is
# there (an attribute run with no walk flagged).
TEXT_COLUMNS = ("image", "stem", "first", "second", "method", "degradation", "generator", "status", "message", "flags")


def cell(value, *, column: str = "") -> str:
    """A value as a table writes it: floats to 6 significant digits, None and NaN empty, an image
    id (in one of :data:`ID_COLUMNS`) in its text form, any other text on one printable line: every
    row of a table is one line of UTF-8, whatever a file name holds."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return image_id_to_text(str(value)) if column in ID_COLUMNS else one_line(str(value))


@dataclass(frozen=True)
class Statistic:
    """Mean and sample standard deviation (n - 1; 0 for a single value); both None when n is 0."""

    mean: float | None
    std: float | None
    n: int


def mean_std(values: Iterable[float | None]) -> Statistic:
    """The statistic of the finite values (None and NaN left out).

    The standard library's exactly rounded mean and std: a table does not depend on the order
    its rows were summed in.
    """
    numbers = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not numbers:
        return Statistic(mean=None, std=None, n=0)
    return Statistic(
        mean=statistics.fmean(numbers), std=statistics.stdev(numbers) if len(numbers) > 1 else 0.0, n=len(numbers)
    )


def read_text_table(path: str | Path) -> pd.DataFrame:
    """A run table with every cell as text (empty: ""), cells beyond the header ignored."""
    import pandas as pd  # here: a run imports pandas only when a logger or the report reads a table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.ParserWarning)
        return pd.read_csv(path, dtype=str, keep_default_na=False, index_col=False, encoding="utf-8")


def read_results(path: str | Path) -> pd.DataFrame:
    """A run's ``results.csv`` with its numbers as numbers (empty: NaN) and its names as text (empty: "")."""
    import pandas as pd

    table = read_text_table(path)
    for column in table.columns:
        if column not in TEXT_COLUMNS:
            numbers = pd.to_numeric(table[column].replace("", None), errors="coerce")
            if numbers.notna().sum() == (table[column] != "").sum():  # a number column: every non-empty cell
                table[column] = numbers
    return table
