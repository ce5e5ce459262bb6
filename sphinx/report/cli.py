"""``python -m sphinx.report DIR [DIR ...] [--out DIR]``: one report over any number of runs.

It writes ``report.md`` (mean ± std per metric, image counts, SPHInX against the best baseline),
``report.csv`` (its numbers, long format), ``report.png`` and, when the runs recorded curves,
``curves.md`` / ``curves.png``; ``sphinx.edit`` runs get ``edits.md``, ``edits.csv`` and
``edits.png`` (attribute measures against their control, morph and direction measures).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sphinx.report.model import ReportError
from sphinx.report.tables import build_report
from sphinx.utils.text import one_line


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 for bad input, 1 if writing fails)."""
    parser = argparse.ArgumentParser(
        prog="python -m sphinx.report",
        description=(
            "Aggregate the results.csv of run or multirun directories into report.md, report.csv and "
            "report.png: methods x degradations, mean ± std of PSNR, SSIM and LPIPS, and SPHInX against "
            "the best baseline."
        ),
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="run or multirun directories")
    parser.add_argument("--out", metavar="DIR", help="where to write the report (default: the first DIR)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has printed its usage message
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        report = build_report(args.dirs, out=args.out)
    except ReportError as error:
        print(f"sphinx.report: error: {one_line(str(error))}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"sphinx.report: error: cannot write the report: {error}", file=sys.stderr)
        return 1
    for warning in report.warnings:
        print(f"sphinx.report: warning: {one_line(warning)}", file=sys.stderr)
    print(report.markdown.read_text(encoding="utf-8"), end="")
    written = [report.markdown, report.csv, report.png, report.curves_markdown, report.curves_png]
    if report.edits is not None and report.edits.markdown != report.markdown:  # edit runs beside inversions
        print("\n" + report.edits.markdown.read_text(encoding="utf-8"), end="")
        written += [report.edits.markdown, report.edits.csv, report.edits.png]
    print(f"\nwrote {', '.join(str(path) for path in written if path is not None)}")
    return 0
