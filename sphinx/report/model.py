"""What a report holds: per-cell statistics, SPHInX against the best baseline, and the files written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sphinx.errors import SphinxError
from sphinx.report.names import LOWER_IS_BETTER, METRICS
from sphinx.rundir.columns import Statistic

if TYPE_CHECKING:
    from sphinx.report.edits import EditReport


class ReportError(SphinxError, ValueError):
    """Input the report cannot use: a missing directory, no results, or a malformed results.csv."""


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

    ``difference`` is SPHInX minus baseline: positive when SPHInX wins on PSNR/SSIM, negative on LPIPS.
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
    edits: EditReport | None = None

    def cell(self, method: str, degradation: str, *, generator: str | None = None, data: str | None = None) -> Cell:
        """The one cell of ``method`` x ``degradation`` (narrowed by generator/data if needed)."""
        found = [
            cell
            for cell in self.cells
            if (cell.method, cell.degradation) == (method, degradation)
            and generator in (None, cell.generator)
            and data in (None, cell.data)
        ]
        if len(found) != 1:
            raise KeyError(
                f"{len(found)} cells match method={method!r} degradation={degradation!r} "
                f"generator={generator!r} data={data!r}; expected exactly one"
            )
        return found[0]
