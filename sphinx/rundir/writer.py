"""Everything a run writes into its run dir.

Each image's outputs land as soon as its batch ends, each file atomically, and its
``record.json`` last: a record on disk means the image is done, which is what resuming reads.
The run-level tables (results.csv, curves.csv, summary.json, failures.csv and the pictures) are
rebuilt from all records at the end, so a resumed run ends with the same tables as an
uninterrupted one. :class:`OutputWriter` writes ``sphinx.run``'s dirs, :class:`EditWriter`
``sphinx.edit``'s; both read their columns from :mod:`sphinx.rundir.columns`.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sphinx.data.datasets import image_id_to_filename
from sphinx.data.images import to_uint8
from sphinx.editing import (
    AttributeEdit,
    apply_direction,
    attribute_flags,
    attribute_measures,
    build_transform,
    morph,
    morph_measures,
    render_attribute,
)
from sphinx.editing.media import gif_bytes, labelled_strip
from sphinx.editing.spec import EditSpec
from sphinx.errors import ConfigError
from sphinx.inversion import InversionState, load_state, render_state, save_state
from sphinx.metrics.image_quality import psnr
from sphinx.rundir.columns import (
    CURVE_COLUMNS,
    CURVES_FILE,
    EDIT_LEADING_COLUMNS,
    EDIT_TRAILING_COLUMNS,
    FAILURES_FILE,
    METRICS,
    RECORD_ONLY,
    RESULT_COLUMNS,
    RESULTS_FILE,
    STATUSES,
    SUMMARY_FILE,
    cell,
    mean_std,
)
from sphinx.rundir.control import compare_with_control
from sphinx.rundir.panels import comparison_grid, score_label
from sphinx.utils.files import atomic_write_bytes, atomic_write_text, read_json
from sphinx.utils.text import image_id_to_text

log = logging.getLogger(__name__)
COMPARISON_TILE = 256
# The README copy: small enough to show inline, still large enough to judge a reconstruction.
SMALL_COMPARISON_TILE = 128
INFLIGHT_FOLDER = "inflight"
# Appended to a batch's ids for the in-flight checkpoints of an attribute batch's control run and
# of the inversion it keeps (no image id holds a NUL).
CONTROL_MARK = "\0control"
INVERSION_MARK = "\0inversion"
MORPH_FOLDER = "morphs"


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class BatchOutcome:
    """What a batch's step computed, for its images' files (written by a Lightning callback).

    Attributes:
        ids: the images inverted in the batch, in batch order.
        positions: each image's (and each unreadable file's) position in the dataset.
        targets: the clean targets ``[B, 3, H, W]``.
        unreadable: ``(id, reason)`` of files that could not be read: failed for good.
        result: the inversion's or the attribute's result; None when the batch crashed or edits
            start from saved states.
        crashed: why the batch crashed (its images are retried by the next run), else ``""``.
        scores: per-image ``psnr``, ``ssim``, ``lpips`` (``[B]`` or None).
        seconds: the batch's seconds per image.
        states: saved states the edits start from, by image id (``edit.states_from``).
        control: for attribute edits, the same learning with each direction frozen at its random
            start (``edit.control``), else None.
    """

    ids: list[str]
    positions: dict[str, int]
    targets: torch.Tensor
    unreadable: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    result: object = None
    crashed: str = ""
    scores: dict = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    states: dict[str, InversionState] | None = None
    control: object = None


class OutputWriter:
    """Writes ``sphinx.run``'s per-image outputs and run tables under ``run_dir``.

    Args:
        run_dir: the run's folder.
        method, degradation, generator: names written into every row.
    """

    def __init__(self, run_dir: str | os.PathLike, *, method: str, degradation: str, generator: str) -> None:
        self.run_dir = Path(run_dir)
        self.images_dir = self.run_dir / "images"
        self.method, self.degradation, self.generator = method, degradation, generator
        self.media: list[tuple[str, np.ndarray, Path]] = []  # (image id, strip, walk.gif) for the logger

    def image_dir(self, image_id: str) -> Path:
        return self.images_dir / image_id_to_filename(image_id)

    def relative(self, path: Path) -> str:
        """A path inside the run dir as results.csv names it."""
        return path.relative_to(self.run_dir).as_posix()

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
        """Every image record, in dataset order.

        Raises:
            ConfigError: a record that sphinx did not write as it is (edited or damaged; a write
                never leaves half a record), naming it and what to do.
        """
        records = [_read_record(path) for path in sorted(self.images_dir.glob("*/record.json"))]
        return sorted(records, key=lambda r: (r["index"], r["image"]))

    def write_record(self, image_id: str, position: int, fields: dict) -> None:
        """An image's record.json: it is done (written last, after its other files)."""
        row = {
            "method": self.method,
            "degradation": self.degradation,
            "generator": self.generator,
            "image": image_id,
            "index": position,
            "stem": image_id_to_filename(image_id),
            **fields,
        }
        atomic_write_text(self.image_dir(image_id) / "record.json", json.dumps(row, indent=1))

    def write_png(self, image_id: str, name: str, pixels: np.ndarray) -> None:
        atomic_write_bytes(self.image_dir(image_id) / f"{name}.png", png_bytes(pixels))

    def write_failure(self, image_id: str, position: int, reason: str, *, retry: bool = False) -> None:
        """The record of an image that failed: ``retry`` when its batch crashed, not the image."""
        failed = {**dict.fromkeys(METRICS), "steps": 0, "seconds": 0.0, "status": "failed", "message": reason}
        self.write_record(image_id, position, {**failed, "retry": retry})

    def write_batch(self, batch: BatchOutcome) -> None:
        """Every file of a batch's images: pictures, states and records (failures included); then
        its in-flight checkpoint goes, since the records are on disk. A crashed batch keeps it: the
        next run retries the batch from there."""
        for image_id, reason in batch.unreadable:
            self.write_failure(image_id, batch.positions[image_id], reason)
        if batch.crashed:
            for image_id in batch.ids:
                self.write_failure(image_id, batch.positions[image_id], batch.crashed, retry=True)
        elif batch.ids:
            self.write_images(batch)
            self.inflight_path(batch.ids).unlink(missing_ok=True)
            for mark in (CONTROL_MARK, INVERSION_MARK):
                self.inflight_path([*batch.ids, mark]).unlink(missing_ok=True)

    def write_images(self, batch: BatchOutcome) -> None:
        """The files of a batch's images that ran."""
        result = batch.result
        for index, image_id in enumerate(batch.ids):
            ok = result.status[index] == "ok"
            self.write_png(image_id, "target", to_uint8(batch.targets[index]))
            self.write_png(image_id, "observation", to_uint8(result.observation_previews[index]))
            if ok:
                self.write_png(image_id, "reconstruction", to_uint8(result.reconstructions[index]))
                save_state(result.states[index], self.image_dir(image_id) / "state.pt")
            scores = {
                name: float(values[index]) if ok and values is not None else None
                for name, values in batch.scores.items()
            }
            spread = result.vicinity_spread
            curve = _curve(result, index, len(batch.ids)) if ok else None
            self.write_record(
                image_id,
                batch.positions[image_id],
                {
                    **scores,
                    "vicinity_spread": float(spread[index]) if ok and spread is not None else None,
                    "steps": int(result.loss_history.shape[0]),
                    "seconds": batch.seconds,
                    "status": result.status[index],
                    "message": result.messages[index],
                    "curve": curve,
                },
            )

    def columns(self, records: Sequence[dict]) -> tuple[str, ...]:
        return RESULT_COLUMNS

    def labels(self) -> dict:
        """What the summary says ran (besides experiment, data and counts)."""
        return {"method": self.method, "degradation": self.degradation, "generator": self.generator}

    def metric_names(self, columns: Sequence[str], ok: Sequence[dict]) -> Sequence[str]:
        return METRICS

    def finalize(
        self,
        *,
        config: dict,
        experiment: str | None,
        data: str,
        steps: dict[str, int] | None = None,
        rows: list[dict] | None = None,
    ) -> dict:
        """Write results.csv, curves.csv, failures.csv, summary.json and the pictures.

        Args:
            config: the resolved run config (stored in the summary).
            experiment: the experiment's name.
            data: what the images are (a folder or the bundled samples).
            steps: the step counts the method ran with (e.g. ``{"steps": 500}``).
            rows: the table's rows, when they are not the image records (morphs: one per pair).

        Returns:
            The summary.
        """
        records = rows if rows is not None else self.records()
        columns = self.columns(records)
        atomic_write_text(self.run_dir / RESULTS_FILE, _table(columns, records))
        images = records if rows is None else self.records()
        curves = [
            {**{k: record[k] for k in CURVE_COLUMNS[:4]}, **dict(zip(record["curve"], point))}
            for record in images
            if record.get("curve")
            for point in zip(*record["curve"].values())
        ]
        atomic_write_text(self.run_dir / CURVES_FILE, _table(CURVE_COLUMNS, curves))
        failures = [{"image": r["image"], "reason": r.get("message", "")} for r in records if r["status"] != "ok"]
        atomic_write_text(self.run_dir / FAILURES_FILE, _table(("image", "reason"), failures))
        ok = [r for r in records if r["status"] == "ok"]
        summary = {
            "experiment": experiment,
            **self.labels(),
            "data": data,
            "steps": steps or {},
            "count": len(records),
            "ok": len(ok),
            "failed": len(records) - len(ok),
            "metrics": {m: dataclasses.asdict(mean_std(r.get(m) for r in ok)) for m in self.metric_names(columns, ok)},
            "seconds": sum(r.get("seconds") or 0 for r in records),
            **self.summarize(ok),
            "config": config,
        }
        atomic_write_text(self.run_dir / SUMMARY_FILE, json.dumps(summary, indent=1))
        self.remove_inflight()
        self.write_pictures(ok)
        return summary

    def summarize(self, ok: Sequence[dict]) -> dict:
        """What the summary adds for this kind of run, from its finished rows."""
        return {}

    def write_pictures(self, ok: Sequence[dict]) -> None:
        """comparison.png (and comparison_small.png): target | observation | reconstruction | error."""
        names = ("target", "observation", "reconstruction")
        tiles, labels = {name: [] for name in names}, []
        for record in ok:
            folder = self.images_dir / record["stem"]
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
            grid = comparison_grid(
                tiles["target"], tiles["reconstruction"], observations=observations, row_labels=labels, tile_side=side
            )
            atomic_write_bytes(self.run_dir / file_name, png_bytes(grid))


class EditWriter(OutputWriter):
    """Writes ``sphinx.edit``'s per-image outputs (states, frames, walks, strips) and run tables.

    Args:
        run_dir, method, degradation, generator: as for :class:`OutputWriter`.
        edit: what the run does with each image.
        network: the generator that renders the frames.
    """

    def __init__(
        self, run_dir: str | os.PathLike, *, method: str, degradation: str, generator: str, edit: EditSpec, network
    ) -> None:
        super().__init__(run_dir, method=method, degradation=degradation, generator=generator)
        self.edit, self.network = edit, network

    def write_record(self, image_id: str, position: int, fields: dict) -> None:
        super().write_record(image_id, position, {"edit": self.edit.kind, **fields})

    def write_failure(self, image_id: str, position: int, reason: str, *, retry: bool = False) -> None:
        self.write_record(
            image_id, position, {"steps": 0, "seconds": 0.0, "status": "failed", "message": reason, "retry": retry}
        )

    def write_images(self, batch: BatchOutcome) -> None:
        if self.edit.kind == "attribute":
            self._write_attributes(batch)
        else:
            self._write_inversions(batch)

    def write_frames(
        self,
        folder: Path,
        frames: torch.Tensor,
        labels: Sequence[str],
        *,
        title: str,
        references: torch.Tensor | None = None,
    ) -> np.ndarray:
        """frames/NN.png, walk.gif and strip.png (with a row of ``references`` under the frames,
        if given) in ``folder``; returns the strip's pixels."""
        for index, frame in enumerate(frames):
            atomic_write_bytes(folder / "frames" / f"{index:02d}.png", png_bytes(to_uint8(frame)))
        atomic_write_bytes(folder / "walk.gif", gif_bytes(frames, duration_ms=self.edit.options["frame_ms"]))
        rows = frames if references is None else torch.stack([frames, references.to(frames)])
        strip = labelled_strip(rows, labels, title=title)
        atomic_write_bytes(folder / "strip.png", png_bytes(strip))
        return strip

    def _write_attributes(self, batch: BatchOutcome) -> None:
        o, result, control = self.edit.options, batch.result, batch.control
        transform = build_transform(o["transform"])
        for index, image_id in enumerate(batch.ids):
            common = {
                "transform": transform.name,
                # joint: fitted with the direction (the authors); kept: the states_from inversion, unchanged
                "inversion": "joint" if o["fit_inversion"] else "kept",
                "factors": " ".join(f"{f:g}" for f in result.factors),
                "steps": int(result.loss_history.shape[0]),
                "seconds": batch.seconds,
                "status": result.status[index],
                "message": result.messages[index],
            }
            if result.status[index] != "ok":
                self.write_record(image_id, batch.positions[image_id], common)
                continue
            folder, state = self.image_dir(image_id), result.states[index]
            save_state(state, folder / "state.pt")
            edit = AttributeEdit.of(state)
            alphas, factors = edit.walk(density=o["walk_density"], extend=o["walk_extend"])
            frames = render_attribute(self.network, state, alphas)
            labels = [f"{transform.label(f)} a={a:.1f}" for f, a in zip(factors.tolist(), alphas.tolist())]
            title = (
                f"{image_id_to_text(image_id)} ({self.method}) - top: walk G(w + a D), "
                f"bottom: {transform.name} T(x, factor); "
                f"learned at {common['factors']}"
            )
            target = batch.targets[index : index + 1]
            references = torch.cat([transform(target, f) for f in factors.tolist()])
            strip = self.write_frames(folder, frames, labels, title=title, references=references)
            measures = attribute_measures(self.network, state, batch.targets[index], transform, held_out=o["held_out"])
            achieved = {float(k.split("@")[1]): v for k, v in measures.items() if k.startswith("achieved@")}
            flags = attribute_flags(
                edit.alphas.tolist(), margin=o["margin"], achieved=achieved, tolerance=o["tolerance"]
            )
            if flags:
                log.warning(
                    "%s: %s (alphas %s)", image_id_to_text(image_id), ", ".join(flags), _numbers(edit.alphas.tolist())
                )
            self.write_record(
                image_id,
                batch.positions[image_id],
                {
                    **common,
                    "alphas": _numbers(edit.alphas.tolist()),
                    **measures,
                    **self._control_measures(control, index, batch.targets[index], transform),
                    "flags": " ".join(flags),
                    "strip": self.relative(folder / "strip.png"),
                    "curve": _curve(result, index, len(batch.ids)),
                },
            )
            self.media.append((image_id, strip, folder / "walk.gif"))

    def _control_measures(self, control, index: int, target: torch.Tensor, transform) -> dict:
        """The control run's measures, ``control_``-prefixed (empty without a control; None if it failed)."""
        if control is None:
            return {}
        if control.status[index] != "ok":
            return {"control_status": control.status[index]}
        state = control.states[index]
        measures = attribute_measures(self.network, state, target, transform, held_out=self.edit.options["held_out"])
        alphas = {"alphas": _numbers(AttributeEdit.of(state).alphas.tolist())}
        return {f"control_{key}": value for key, value in {**alphas, **measures}.items()}

    def _write_inversions(self, batch: BatchOutcome) -> None:
        result = batch.result
        if result is None:  # edits of saved states
            states = [batch.states[i] for i in batch.ids]
            status, messages, steps, seconds = ["ok"] * len(batch.ids), [""] * len(batch.ids), 0, 0.0
        else:
            states, status, messages = result.states, result.status, result.messages
            steps, seconds = int(result.loss_history.shape[0]), batch.seconds
        for index, image_id in enumerate(batch.ids):
            common = {
                "steps": steps,
                "seconds": seconds,
                "status": status[index],
                "message": messages[index],
                "curve": _curve(result, index, len(batch.ids)) if status[index] == "ok" else None,
            }
            if status[index] != "ok":
                self.write_record(image_id, batch.positions[image_id], common)
                continue
            state = states[index]
            save_state(state, self.image_dir(image_id) / "state.pt")
            reconstruction = render_state(self.network, state)
            self.write_png(image_id, "reconstruction", to_uint8(reconstruction))
            target = batch.targets[index : index + 1].to(reconstruction)
            fields = {**common, "psnr": float(psnr(reconstruction, target)[0])}
            if self.edit.kind == "direction":
                fields.update(self._write_direction(image_id, state))
            self.write_record(image_id, batch.positions[image_id], fields)

    def _write_direction(self, image_id: str, state: InversionState) -> dict:
        o, folder = self.edit.options, self.image_dir(image_id)
        frames = apply_direction(self.network, state, self.edit.direction, strengths=o["strengths"], layers=o["layers"])
        labels = [f"{s:+g}" for s in o["strengths"]]
        start, stop = o["layers"][0], o["layers"][1] if o["layers"][1] is not None else self.network.n_latent
        title = f"{image_id_to_text(image_id)} - {self.edit.direction_name} on W+ rows {start}..{stop - 1}, by strength"
        strip = self.write_frames(folder, frames, labels, title=title)
        self.media.append((image_id, strip, folder / "walk.gif"))
        # How far the largest step moves the image from the inversion (mean abs, [-1, 1] units).
        change = (frames - render_state(self.network, state)).abs().flatten(1).mean(dim=1).max()
        return {
            "direction": self.edit.direction_name,
            "strengths": " ".join(f"{s:g}" for s in o["strengths"]),
            "layers": f"{start}:{stop}",
            "change": float(change),
            "strip": self.relative(folder / "strip.png"),
        }

    def morph_pairs(self, ordered_ids: Sequence[str]) -> list[dict]:
        """Morph each image into the next one (dataset order) from their saved states; one row per pair."""
        frames, rows = self.edit.options["frames"], []
        records = {r["image"]: r for r in self.records()}
        ready = [i for i in ordered_ids if records.get(i, {}).get("status") == "ok"]
        for first, second in zip(ready, ready[1:]):
            paths = [self.image_dir(i) / "state.pt" for i in (first, second)]
            states = [load_state(p) for p in paths]
            clip = morph(self.network, states[0], states[1], frames=frames, sources=tuple(paths))
            measures = morph_measures(
                clip, render_state(self.network, states[0]), render_state(self.network, states[1])
            )
            folder = self.run_dir / MORPH_FOLDER / f"{image_id_to_filename(first)}__{image_id_to_filename(second)}"
            labels = [f"{t:.2f}" for t in torch.linspace(0, 1, frames).tolist()]
            pair = f"{image_id_to_text(first)} -> {image_id_to_text(second)}"
            self.write_frames(folder, clip, labels, title=f"{pair}, by interpolation weight")
            rows.append(
                {
                    "image": f"{first} -> {second}",
                    "edit": "morph",
                    "method": self.method,
                    "generator": self.generator,
                    "first": first,
                    "second": second,
                    "frames": frames,
                    **measures,
                    "strip": self.relative(folder / "strip.png"),
                    "status": "ok",
                }
            )
        return rows

    def columns(self, records: Sequence[dict]) -> tuple[str, ...]:
        middle = []
        for record in records:
            middle += [
                k
                for k in record
                if k not in middle and k not in (*EDIT_LEADING_COLUMNS, *EDIT_TRAILING_COLUMNS, *RECORD_ONLY)
            ]
        return (*EDIT_LEADING_COLUMNS, *middle, *EDIT_TRAILING_COLUMNS)

    def labels(self) -> dict:
        return {"edit": self.edit.kind, "method": self.method, "generator": self.generator}

    def metric_names(self, columns: Sequence[str], ok: Sequence[dict]) -> Sequence[str]:
        middle = columns[len(EDIT_LEADING_COLUMNS) : -len(EDIT_TRAILING_COLUMNS)]
        return [k for k in middle if any(isinstance(r.get(k), float) for r in ok)]

    def summarize(self, ok: Sequence[dict]) -> dict:
        """For attributes: how many walks are flagged, and the learned-versus-control comparison."""
        if self.edit.kind != "attribute":
            return {}
        return {"flagged": sum(bool(r.get("flags")) for r in ok), "control": compare_with_control(ok)}

    def write_pictures(self, ok: Sequence[dict]) -> None:
        """overview.png: every strip of the run, stacked."""
        strips = [np.asarray(Image.open(self.run_dir / r["strip"]).convert("RGB")) for r in ok if r.get("strip")]
        if strips:
            width = max(s.shape[1] for s in strips)
            padded = [np.pad(s, ((0, 4), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in strips]
            atomic_write_bytes(self.run_dir / "overview.png", png_bytes(np.concatenate(padded, axis=0)))


def _read_record(path: Path) -> dict:
    try:
        record = read_json(path)
        problem = _record_problem(record)
    except ValueError as unreadable:
        problem = str(unreadable)
    if problem is not None:
        raise ConfigError(
            f"{path}: not an image record as sphinx writes it ({problem}); restore it, or delete its folder "
            f"{path.parent} to run that image again"
        )
    return record


_NUMBER = (int, float)
# What every record holds (sphinx.run's and sphinx.edit's), as the writer and the tables read it.
_RECORD_FIELDS = {
    "image": str,
    "method": str,
    "generator": str,
    "index": int,
    "stem": str,
    "status": str,
    "steps": int,
    "seconds": _NUMBER,
}


def _record_problem(record) -> str | None:
    """What in a record.json the writer would trip over, or None."""
    if not isinstance(record, dict):
        return "not a JSON object"
    for key, kind in _RECORD_FIELDS.items():
        value = record.get(key)
        if isinstance(value, bool) or not isinstance(value, kind):
            return f"{key} is {value!r}"
    if record["status"] not in STATUSES:
        return f"status is {record['status']!r}"
    if record["index"] < 0:
        return f"index is {record['index']!r}"
    if Path(record["stem"]).name != record["stem"] or record["stem"] in ("", ".", ".."):
        return f"stem is {record['stem']!r}, not a folder name"
    if not isinstance(record.get("retry", False), bool):
        return f"retry is {record['retry']!r}"
    for key, value in record.items():
        if key in METRICS and value is not None and (isinstance(value, bool) or not isinstance(value, _NUMBER)):
            return f"{key} is {value!r}"
    curve = record.get("curve")
    if curve is not None and not (isinstance(curve, dict) and all(isinstance(v, list) for v in curve.values())):
        return "curve is not a table of lists"
    return None


def _numbers(values: Sequence[float]) -> str:
    return " ".join(f"{v:.4g}" for v in values)


def _curve(result, index: int, batch_size: int) -> dict | None:
    """An image's quality curve, each point's seconds its share of the batch's, or None."""
    if result is None or result.curve is None:
        return None
    return result.curve.for_image(index, share=batch_size)


def _table(columns: Sequence[str], rows: Iterable[dict]) -> str:
    """A CSV table of ``rows`` in ``columns`` (keys beyond them ignored), cells as :func:`cell` writes them."""
    lines = io.StringIO()
    writer = csv.DictWriter(lines, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: cell(row.get(k), column=k) for k in columns})
    return lines.getvalue()
