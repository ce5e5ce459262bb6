"""The report over ``sphinx.edit`` run dirs: edits.md, edits.csv and edits.png.

Attribute runs get one table per transform, method and inversion (``joint``: fitted with the
direction, as the authors do; ``kept``: a saved inversion left as it was): how many images, how many flagged, the
reconstruction, the held-out PSNR against its no-edit baseline, the achieved amount of every asked
factor next to the asked one, what should not change, and the same for the control run with the
direction frozen, with the verdict of :func:`sphinx.rundir.control.compare_with_control`. Morph
and direction runs get their means. The plot shows achieved against asked factors, learned and
control, per transform.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sphinx.report.model import ReportError
from sphinx.report.names import METHOD_ORDER, order_key
from sphinx.report.render import markdown_table
from sphinx.rundir.columns import EDIT_LEADING_COLUMNS, mean_std, read_results
from sphinx.rundir.control import compare_with_control, describe_comparison
from sphinx.utils.files import atomic_write_bytes

# What a kind of edit reports besides its counts, in this order.
MORPH_MEASURES = ("endpoint_error", "step_mean", "smoothness")
DIRECTION_MEASURES = ("psnr", "change")
UNCHANGED_MEASURES = ("intensity_change", "structure")


@dataclass(frozen=True)
class EditReport:
    """The edit report's files and its learned-versus-control verdicts, by (transform, method, inversion)."""

    title: str
    markdown: Path
    csv: Path
    png: Path
    comparisons: dict[tuple[str, str], dict]


def is_edit_results(path: Path) -> bool:
    """Whether a results.csv is ``sphinx.edit``'s (its header leads with the edit columns)."""
    try:
        with path.open(encoding="utf-8") as stream:
            header = stream.readline().rstrip("\r\n").split(",")
    except (OSError, UnicodeDecodeError):
        return False
    return tuple(header[: len(EDIT_LEADING_COLUMNS)]) == EDIT_LEADING_COLUMNS


def build_edit_report(paths: Sequence[Path], out_dir: Path) -> EditReport:
    """Read the edit runs' results.csv files and write edits.md, edits.csv and edits.png into ``out_dir``.

    Raises:
        ReportError: a results.csv that cannot be read.
    """
    tables = []
    for path in paths:
        try:
            tables.append(read_results(path).assign(source=str(path)))
        except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
            raise ReportError(f"cannot read {path}: {error}") from None
    rows = pd.concat(tables, ignore_index=True)
    for column in ("transform", "inversion"):
        rows[column] = rows[column].fillna("") if column in rows else ""
    # an image edited twice the same way (a resumed or repeated run) counts once: the newest row
    rows = rows.drop_duplicates(["edit", "method", "generator", "transform", "inversion", "image"], keep="last")
    lines, long_rows, comparisons = [f"# Edits: {', '.join(sorted(set(rows['edit'])))}", ""], [], {}
    for (edit, transform), group in rows.groupby(["edit", "transform"], sort=True):
        settings = {(m, i) for m, i in zip(group["method"], group["inversion"])}
        for method, inversion in sorted(settings, key=lambda s: (order_key(s[0], METHOD_ORDER), s[1])):
            runs = group[(group["method"] == method) & (group["inversion"] == inversion)]
            ok = runs[runs["status"] == "ok"]
            records = ok.to_dict("records")
            setting = f", inversion {inversion}" if inversion else ""
            title = f"{edit} {transform}".strip() + f" / {method}{setting} ({runs['generator'].iloc[0]})"
            flags = _flag_count(ok) if edit == "attribute" else ""
            lines += [f"## {title}", "", f"{len(ok)} ok, {len(runs) - len(ok)} failed" + flags, ""]
            if edit == "attribute":
                comparison = compare_with_control(records)
                comparisons[(transform, method, inversion)] = comparison
                lines += [describe_comparison(transform, comparison), ""]
                lines += _attribute_table(ok)
                measures = [c for c in ok.columns if _numeric(ok, c) and c not in ("steps", "seconds", "frames")]
            else:
                measures = [m for m in (MORPH_MEASURES if edit == "morph" else DIRECTION_MEASURES) if m in ok]
                lines += _means_table(ok, measures)
            lines.append("")
            for measure in measures:
                statistic = mean_std(ok[measure].tolist())
                long_rows.append(
                    (edit, transform, method, inversion, measure, statistic.mean, statistic.std, statistic.n)
                )
    markdown, csv_path, png = out_dir / "edits.md", out_dir / "edits.csv", out_dir / "edits.png"
    table = pd.DataFrame(long_rows, columns=["edit", "transform", "method", "inversion", "measure", "mean", "std", "n"])
    atomic_write_bytes(markdown, "\n".join(lines).encode("utf-8"))
    atomic_write_bytes(csv_path, table.to_csv(index=False, lineterminator="\n").encode())
    atomic_write_bytes(png, _achieved_png(rows[(rows["edit"] == "attribute") & (rows["status"] == "ok")]))
    return EditReport(lines[0][2:], markdown, csv_path, png, comparisons)


def _numeric(table: pd.DataFrame, column: str) -> bool:
    return pd.api.types.is_numeric_dtype(table[column]) and table[column].notna().any()


def _flag_count(ok: pd.DataFrame) -> str:
    if "flags" not in ok:
        return ""
    flagged = ok[ok["flags"].fillna("").astype(str).str.strip() != ""]
    return f"; {len(flagged)} flagged ({', '.join(flagged['image'])})" if len(flagged) else "; none flagged"


def _attribute_table(ok: pd.DataFrame) -> list[str]:
    """Per image: reconstruction, held-out PSNR (no-edit baseline), asked -> achieved, learned and control."""
    # the runs of other transforms add their own columns to the table read: only this group's count
    present = [c for c in ok.columns if ok[c].notna().any()]
    asked = [c.split("@", 1)[1] for c in present if c.startswith("achieved@")]
    unchanged = next((m for m in UNCHANGED_MEASURES if m in present), None)
    identity = next((c for c in present if c.startswith("psnr@")), None)  # the first factor is the identity
    header = ["image", "alphas", f"reconstruction ({identity})", "held-out PSNR / no edit"]
    header += [f"achieved@{a} / control" for a in asked]
    header += [f"{unchanged} / control"] if unchanged else []
    header += ["flags"]
    rows = []
    for record in ok.to_dict("records"):
        cells = [str(record["image"]), str(record.get("alphas", "")), _number(record.get(identity), 2)]
        cells.append(f"{_number(record.get('psnr_heldout'), 2)} / {_number(record.get('psnr_identity'), 2)}")
        cells += [
            f"{_number(record.get(f'achieved@{a}'))} / {_number(record.get(f'control_achieved@{a}'))}" for a in asked
        ]
        if unchanged:
            cells.append(f"{_number(record.get(unchanged))} / {_number(record.get(f'control_{unchanged}'))}")
        cells.append(str(record.get("flags") or "") if pd.notna(record.get("flags")) else "")
        rows.append(cells)
    return markdown_table(header, rows)


def _means_table(ok: pd.DataFrame, measures: Sequence[str]) -> list[str]:
    statistics = [mean_std(ok[m].tolist()) for m in measures]
    return markdown_table(measures, [[f"{s.mean:.4g} ± {s.std:.2g}" if s.n else "" for s in statistics]])


def _number(value, digits: int | None = None) -> str:
    if value is None or pd.isna(value):
        return ""
    return f"{value:.{digits}f}" if digits is not None else f"{value:.4g}"


def _achieved_png(rows: pd.DataFrame) -> bytes:
    """Achieved against asked factor per transform: each image's learned walk and its control."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    transforms = sorted(set(rows["transform"])) if len(rows) else []
    figure = Figure(figsize=(4.2 * max(len(transforms), 1), 4.0), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, max(len(transforms), 1), squeeze=False)[0]
    for ax, transform in zip(axes, transforms):
        group = rows[rows["transform"] == transform]
        asked = [c.split("@", 1)[1] for c in group.columns if c.startswith("achieved@") and group[c].notna().any()]
        factors = [float(a) for a in asked]
        identity = float(str(group["factors"].iloc[0]).split()[0])
        for prefix, marker, label in (("", "o", "learned direction"), ("control_", "x", "frozen control")):
            columns = [f"{prefix}achieved@{a}" for a in asked]
            if not all(c in group for c in columns):
                continue
            for index, (_, record) in enumerate(group.iterrows()):
                values = [record[c] for c in columns]
                ax.plot(factors, values, marker, color=f"C{index}", label=f"{record['image']}, {label}")
        span = [identity, *factors]
        ax.plot([min(span), max(span)], [min(span), max(span)], "k--", linewidth=0.8, label="achieved = asked")
        ax.axhline(identity, color="0.6", linewidth=0.8)
        methods = ", ".join(sorted({f"{m}, {i}" if i else m for m, i in zip(group["method"], group["inversion"])}))
        ax.set(title=f"{transform} ({methods})", xlabel="asked factor", ylabel="achieved factor")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if not transforms:
        axes[0].text(0.5, 0.5, "no attribute runs", ha="center", va="center", transform=axes[0].transAxes)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
