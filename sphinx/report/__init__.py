"""Reports over run dirs: methods x degradations tables, plots and quality-versus-budget curves.

``python -m sphinx.report DIR [DIR ...]`` (:mod:`sphinx.report.cli`); :func:`build_report` in code.
"""

from sphinx.report.cli import main
from sphinx.report.model import Cell, Comparison, Report, ReportError, Statistic
from sphinx.report.tables import RESULTS_COLUMNS, build_report

__all__ = ["RESULTS_COLUMNS", "Cell", "Comparison", "Report", "ReportError", "Statistic", "build_report", "main"]
