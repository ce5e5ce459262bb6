"""Everything a run writes into its run dir.

Each image's outputs land as soon as its batch ends, each file atomically, and its
``record.json`` last: a record on disk means the image is done, which is what resuming reads.
The run-level tables (results.csv, curves.csv, summary.json, failures.csv, comparison.png) are
rebuilt from all records at the end, so a resumed run ends with the same tables as an
uninterrupted one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import statistics
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from sphinx.rundir.panels import comparison_grid, score_label
from sphinx.utils.files import atomic_write_bytes, atomic_write_text

RESULT_COLUMNS = ("image", "method", "degradation", "generator", "psnr", "ssim", "lpips",
                  "vicinity_spread", "steps", "seconds", "status")
METRICS = ("psnr", "ssim", "lpips", "vicinity_spread")
CURVE_COLUMNS = ("image", "method", "degradation", "generator", "step", "seconds", "psnr", "ssim", "lpips")
COMPARISON_TILE = 256
# The README copy: small enough to show inline, still large enough to judge a reconstruction.
SMALL_COMPARISON_TILE = 128
INFLIGHT_FOLDER = "inflight"


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


class OutputWriter:
    """Writes per-image outputs and run tables under ``run_dir``.

    Args:
        run_dir: the run's folder.
        method, degradation, generator: names written into every row.
    """

    def __init__(self, run_dir: str | os.PathLike, *, method: str, degradation: str, generator: str) -> None:
        self.run_dir = Path(run_dir)
        self.images_dir = self.run_dir / "images"
        self.method, self.degradation, self.generator = method, degradation, generator

    def image_dir(self, stem: str) -> Path:
        return self.images_dir / stem

    def inflight_path(self, ids: Iterable[str]) -> Path:
        """The in-flight checkpoint of the batch of ``ids`` (see ``sphinx.inversion.batch_checkpoint``)."""
        digest = hashlib.sha1("\n".join(ids).encode("utf-8", "surrogatepass")).hexdigest()[:16]
        return self.run_dir / INFLIGHT_FOLDER / f"{digest}.pt"

    def remove_inflight(self) -> None:
        """Delete the in-flight checkpoints of a finished run (batches that may have been re-formed)."""
        folder = self.run_dir / INFLIGHT_FOLDER
        for path in folder.glob("*.pt"):
            path.unlink(missing_ok=True)
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()

    def done_ids(self) -> set[str]:
        """Ids of images with a record on disk (finished, or failed for good).

        A record marked ``retry`` (its batch crashed, through no fault of the image) is not done:
        the next run inverts it again.
        """
        return {record["image"] for record in self.records() if not record.get("retry")}

    def records(self) -> list[dict]:
        """Every image record, in dataset order."""
        records = []
        for path in sorted(self.images_dir.glob("*/record.json")):
            try:
                records.append(json.loads(path.read_text()))
            except (OSError, json.JSONDecodeError):
                continue  # never half-written (atomic), but a user may have edited one
        return sorted(records, key=lambda r: (r["index"], r["image"]))

    def write_record(self, stem: str, record: dict) -> None:
        row = {"method": self.method, "degradation": self.degradation, "generator": self.generator, **record}
        atomic_write_text(self.image_dir(stem) / "record.json", json.dumps(row, indent=1))

    def write_png(self, stem: str, name: str, pixels: np.ndarray) -> None:
        atomic_write_bytes(self.image_dir(stem) / f"{name}.png", png_bytes(pixels))

    def finalize(self, *, config: dict, experiment: str | None, data: str, steps: dict[str, int] | None = None) -> dict:
        """Write results.csv, curves.csv, failures.csv, summary.json and comparison.png.

        Args:
            config: the resolved run config (stored in the summary).
            experiment: the experiment's name.
            data: what the images are (a folder or the bundled samples).
            steps: the step counts the method ran with (e.g. ``{"steps": 500}``).

        Returns:
            The summary.
        """
        records = self.records()
        lines = io.StringIO()
        writer = csv.DictWriter(lines, fieldnames=RESULT_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow({k: _cell(record.get(k)) for k in RESULT_COLUMNS})
        atomic_write_text(self.run_dir / "results.csv", lines.getvalue())
        self._write_curves(records)

        failures = io.StringIO()
        failure_writer = csv.writer(failures, lineterminator="\n")
        failure_writer.writerow(["image", "reason"])
        for record in records:
            if record["status"] != "ok":
                failure_writer.writerow([record["image"], record.get("message", "")])
        atomic_write_text(self.run_dir / "failures.csv", failures.getvalue())

        ok = [r for r in records if r["status"] == "ok"]
        summary = {
            "experiment": experiment, "method": self.method, "degradation": self.degradation,
            "generator": self.generator, "data": data, "steps": steps or {}, "count": len(records), "ok": len(ok),
            "failed": len(records) - len(ok),
            "metrics": {m: _mean_std([r.get(m) for r in ok]) for m in METRICS},
            "seconds": sum(r.get("seconds") or 0 for r in records),
            "config": config,
        }
        atomic_write_text(self.run_dir / "summary.json", json.dumps(summary, indent=1))
        self.remove_inflight()
        self._write_comparison([r for r in ok])
        return summary

    def _write_curves(self, records: Iterable[dict]) -> None:
        """curves.csv: every image's quality at each recorded step, one row per (image, step)."""
        lines = io.StringIO()
        writer = csv.DictWriter(lines, fieldnames=CURVE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for record in records:
            curve = record.get("curve") or {}
            for point in range(len(curve.get("step", []))):
                row = {"image": record["image"], "method": record["method"], "degradation": record["degradation"],
                       "generator": record["generator"]}
                row.update({k: _cell(curve[k][point]) if k in curve else "" for k in CURVE_COLUMNS[4:]})
                writer.writerow(row)
        atomic_write_text(self.run_dir / "curves.csv", lines.getvalue())

    def _write_comparison(self, records: Iterable[dict]) -> None:
        """comparison.png (and comparison_small.png): target | observation | reconstruction | error."""
        names = ("target", "observation", "reconstruction")
        tiles, labels = {name: [] for name in names}, []
        for record in records:
            folder = self.image_dir(record["stem"])
            try:
                loaded = {n: np.asarray(Image.open(folder / f"{n}.png").convert("RGB")) for n in names}
            except OSError:
                continue
            for name in names:
                tiles[name].append(loaded[name])
            labels.append(score_label(record["image"], record.get("psnr"), record.get("ssim")))
        if not labels:
            return
        observations = tiles["observation"] if self.degradation != "none" else None
        for file_name, side in (("comparison.png", COMPARISON_TILE), ("comparison_small.png", SMALL_COMPARISON_TILE)):
            grid = comparison_grid(tiles["target"], tiles["reconstruction"], observations=observations,
                                   row_labels=labels, tile_side=side)
            atomic_write_bytes(self.run_dir / file_name, png_bytes(grid))


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _mean_std(values: list) -> dict:
    numbers = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not numbers:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.fmean(numbers), "std": statistics.stdev(numbers) if len(numbers) > 1 else 0.0,
            "n": len(numbers)}
