"""EditModule and EditWriter: the thin Lightning layer of ``python -m sphinx.edit``.

Each test batch learns an attribute (``edit.kind: attribute``) or obtains inversions (inverted
here, or loaded from a finished ``sphinx.run``) that are then moved along a direction
(``direction``) or, once all are done, morphed pairwise (``morph``). Outputs land per image as
soon as its batch ends, its ``record.json`` last, so a rerun in the same run dir resumes.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pytorch_lightning.loggers import WandbLogger

from sphinx.data.datasets import image_id_to_filename
from sphinx.data.images import to_uint8
from sphinx.editing import (AttributeEdit, apply_direction, attribute_measures, build_transform, learn_attribute,
                            morph, morph_measures, render_attribute)
from sphinx.editing.media import gif_bytes, labelled_strip
from sphinx.inversion import InversionState, invert, load_state, render_state, save_state
from sphinx.inversion.methods import MethodConfig
from sphinx.lit.loggers import log_pictures
from sphinx.lit.module import InversionModule
from sphinx.rundir.writer import OutputWriter, _cell, _mean_std, atomic_write_bytes, atomic_write_text, png_bytes
from sphinx.metrics.image_quality import psnr

log = logging.getLogger(__name__)
LEADING_COLUMNS = ("image", "edit", "method", "generator")
TRAILING_COLUMNS = ("steps", "seconds", "status", "message")
MORPH_DIR = "morphs"


@dataclass(frozen=True)
class EditSpec:
    """What to do with each image, from the ``edit`` group.

    Attributes:
        kind: ``attribute``, ``morph`` or ``direction``.
        options: the group's keys (see ``conf/edit/*.yaml``).
        direction: for ``direction``: ``[n_latent, style_dim]``, already loaded or computed.
        direction_name: how results.csv names it (``pca:0`` or the file).
        initial_states: saved states by image id (``states_from``), else empty.
    """

    kind: str
    options: dict
    direction: torch.Tensor | None = None
    direction_name: str = ""
    initial_states: dict | None = None


class EditWriter(OutputWriter):
    """Per-image edit outputs and the run tables (columns follow what the records hold)."""

    def relative(self, path: Path) -> str:
        """A path inside the run dir as results.csv names it."""
        return path.relative_to(self.run_dir).as_posix()

    def write_frames(self, folder: Path, frames: torch.Tensor, labels: Sequence[str], *, title: str,
                     frame_ms: int, references: torch.Tensor | None = None) -> np.ndarray:
        """frames/NN.png, walk.gif and strip.png (with a row of ``references`` under the frames,
        if given) in ``folder``; returns the strip's pixels."""
        for index, frame in enumerate(frames):
            atomic_write_bytes(folder / "frames" / f"{index:02d}.png", png_bytes(to_uint8(frame)))
        atomic_write_bytes(folder / "walk.gif", gif_bytes(frames, duration_ms=frame_ms))
        rows = frames if references is None else torch.stack([frames, references.to(frames)])
        strip = labelled_strip(rows, labels, title=title)
        atomic_write_bytes(folder / "strip.png", png_bytes(strip))
        return strip

    def finalize(self, *, config: dict, experiment: str | None, data: str, rows: list[dict] | None = None) -> dict:
        """results.csv, failures.csv, summary.json and overview.png (every strip, stacked)."""
        records = rows if rows is not None else self.records()
        middle = []
        for record in records:
            middle += [k for k in record if k not in middle and k not in LEADING_COLUMNS + TRAILING_COLUMNS
                       and k not in ("index", "stem", "degradation")]
        columns = [*LEADING_COLUMNS, *middle, *TRAILING_COLUMNS]
        lines = io.StringIO()
        writer = csv.DictWriter(lines, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow({k: _cell(record.get(k)) for k in columns})
        atomic_write_text(self.run_dir / "results.csv", lines.getvalue())
        failures = io.StringIO()
        csv.writer(failures, lineterminator="\n").writerows(
            [("image", "reason")] + [(r["image"], r.get("message", "")) for r in records if r["status"] != "ok"])
        atomic_write_text(self.run_dir / "failures.csv", failures.getvalue())
        ok = [r for r in records if r["status"] == "ok"]
        numeric = [k for k in middle if any(isinstance(r.get(k), float) for r in ok)]
        summary = {"experiment": experiment, "edit": config.get("edit", {}).get("kind"), "method": self.method,
                   "generator": self.generator, "data": data, "count": len(records), "ok": len(ok),
                   "failed": len(records) - len(ok), "metrics": {k: _mean_std([r.get(k) for r in ok]) for k in numeric},
                   "seconds": sum(r.get("seconds") or 0 for r in records), "config": config}
        atomic_write_text(self.run_dir / "summary.json", json.dumps(summary, indent=1))
        strips = [np.asarray(Image.open(self.run_dir / r["strip"]).convert("RGB")) for r in ok if r.get("strip")]
        if strips:
            width = max(s.shape[1] for s in strips)
            padded = [np.pad(s, ((0, 4), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in strips]
            atomic_write_bytes(self.run_dir / "overview.png", png_bytes(np.concatenate(padded, axis=0)))
        return summary


class EditModule(InversionModule):
    """Edits each test batch; see the module docstring.

    Args:
        generator, method, degradation, seed, lpips, writer, progress: as for
            :class:`sphinx.lit.module.InversionModule`.
        edit: what to do with each image.
    """

    def __init__(self, generator, *, method: MethodConfig, degradation, seed: int, lpips, writer: EditWriter,
                 edit: EditSpec, progress: bool = True) -> None:
        super().__init__(generator, method=method, degradation=degradation, seed=seed, lpips=lpips, writer=writer,
                         progress=progress)
        self.edit = edit
        self.media: list[tuple[str, np.ndarray, Path]] = []

    def _invert_batch(self, images: torch.Tensor, ids: list[str], positions: dict) -> None:
        step_bar = self._step_bar()
        try:
            with torch.enable_grad():
                if self.edit.kind == "attribute":
                    self._attribute(images, ids, positions, step_bar)
                else:
                    self._inversions(images, ids, positions, step_bar)
        except Exception as error:  # one batch's crash must not lose the others' results
            log.exception("batch %s failed", ids)
            for image_id in ids:
                self._record_failure(image_id, positions[image_id], f"edit crashed: {error}".splitlines()[0])
        finally:
            if step_bar is not None:
                step_bar.close()
        self._log_media()

    def _record(self, image_id: str, position: int, fields: dict) -> None:
        stem = image_id_to_filename(image_id)
        self.writer.write_record(stem, {"image": image_id, "index": position, "stem": stem,
                                        "edit": self.edit.kind, **fields})

    def _attribute(self, images: torch.Tensor, ids: list[str], positions: dict, step_bar) -> None:
        o = self.edit.options
        transform = build_transform(o["transform"])
        initial = [self.edit.initial_states[i] for i in ids] if self.edit.initial_states else None
        result = learn_attribute(self.generator, images, ids, transform=transform, factors=o["factors"],
                                 method=self.method, seed=self.seed, lpips=self.lpips, initial_states=initial,
                                 mono_weight=o["mono_weight"], margin=o["margin"], attribute_lr=o["attribute_lr"],
                                 callback=lambda r: self._on_step(r, step_bar))
        seconds = result.seconds / len(ids)
        for index, image_id in enumerate(ids):
            common = {"transform": transform.name, "factors": " ".join(f"{f:g}" for f in result.factors),
                      "steps": int(result.loss_history.shape[0]), "seconds": seconds,
                      "status": result.status[index], "message": result.messages[index]}
            if result.status[index] != "ok":
                self._record(image_id, positions[image_id], common)
                continue
            folder = self.writer.image_dir(image_id_to_filename(image_id))
            state = result.states[index]
            save_state(state, folder / "state.pt")
            edit = AttributeEdit.of(state)
            alphas, factors = edit.walk(density=o["walk_density"], extend=o["walk_extend"])
            frames = render_attribute(self.generator, state, alphas)
            labels = [f"{transform.label(f)} a={a:.1f}" for f, a in zip(factors.tolist(), alphas.tolist())]
            title = (f"{image_id} - top: walk G(w + a D), bottom: {transform.name} T(x, factor); "
                     f"learned at {common['factors']}")
            references = torch.cat([transform(images[index:index + 1], f) for f in factors.tolist()])
            strip = self.writer.write_frames(folder, frames, labels, title=title, frame_ms=o["frame_ms"],
                                             references=references)
            measures = attribute_measures(self.generator, state, images[index], transform, held_out=o["held_out"])
            self._record(image_id, positions[image_id], {
                **common, "alphas": " ".join(f"{a:.4g}" for a in edit.alphas.tolist()), **measures,
                "strip": self.writer.relative(folder / "strip.png")})
            self.media.append((image_id, strip, folder / "walk.gif"))

    def _inversions(self, images: torch.Tensor, ids: list[str], positions: dict, step_bar) -> None:
        if self.edit.initial_states:
            states = [self.edit.initial_states[i] for i in ids]
            status, messages, steps, seconds = ["ok"] * len(ids), [""] * len(ids), 0, 0.0
        else:
            result = invert(self.generator, images, ids, method=self.method, degradation=self.degradation,
                            seed=self.seed, lpips=self.lpips, callback=lambda r: self._on_step(r, step_bar))
            states, status, messages = result.states, result.status, result.messages
            steps, seconds = int(result.loss_history.shape[0]), result.seconds / len(ids)
        for index, image_id in enumerate(ids):
            common = {"steps": steps, "seconds": seconds, "status": status[index], "message": messages[index]}
            if status[index] != "ok":
                self._record(image_id, positions[image_id], common)
                continue
            folder = self.writer.image_dir(image_id_to_filename(image_id))
            state = states[index]
            save_state(state, folder / "state.pt")
            reconstruction = render_state(self.generator, state)
            self.writer.write_png(folder.name, "reconstruction", to_uint8(reconstruction))
            fields = {**common, "psnr": float(psnr(reconstruction, images[index:index + 1].to(reconstruction))[0])}
            if self.edit.kind == "direction":
                fields.update(self._direction(image_id, state, folder))
            self._record(image_id, positions[image_id], fields)

    def _direction(self, image_id: str, state: InversionState, folder: Path) -> dict:
        o = self.edit.options
        frames = apply_direction(self.generator, state, self.edit.direction, strengths=o["strengths"],
                                 layers=o["layers"])
        labels = [f"{s:+g}" for s in o["strengths"]]
        start, stop = o["layers"][0], o["layers"][1] if o["layers"][1] is not None else self.generator.n_latent
        title = f"{image_id} - {self.edit.direction_name} on W+ rows {start}..{stop - 1}, by strength"
        strip = self.writer.write_frames(folder, frames, labels, title=title, frame_ms=o["frame_ms"])
        self.media.append((image_id, strip, folder / "walk.gif"))
        # How far the largest step moves the image from the inversion (mean abs, [-1, 1] units).
        change = (frames - render_state(self.generator, state)).abs().flatten(1).mean(dim=1).max()
        return {"direction": self.edit.direction_name, "strengths": " ".join(f"{s:g}" for s in o["strengths"]),
                "layers": f"{start}:{stop}", "change": float(change),
                "strip": self.writer.relative(folder / "strip.png")}

    def _log_media(self) -> None:
        """Strips as pictures for the logger, and walks as animated GIFs for W&B."""
        media, self.media = self.media, []
        if not media:
            return
        log_pictures(self.logger, "strips", [m[1] for m in media], [m[0] for m in media], step=self._logged_steps)
        if isinstance(self.logger, WandbLogger):
            import wandb

            self.logger.experiment.log({"walks": [wandb.Video(str(m[2]), format="gif", caption=m[0]) for m in media]})


def morph_pairs(generator, writer: EditWriter, *, frames: int, frame_ms: int, ordered_ids: Sequence[str]) -> list[dict]:
    """Morph each image into the next one (dataset order) from their saved states; one row per pair."""
    rows = []
    records = {r["image"]: r for r in writer.records()}
    ready = [i for i in ordered_ids if records.get(i, {}).get("status") == "ok"]
    for first, second in zip(ready, ready[1:]):
        paths = [writer.image_dir(image_id_to_filename(i)) / "state.pt" for i in (first, second)]
        states = [load_state(p) for p in paths]
        clip = morph(generator, states[0], states[1], frames=frames, sources=tuple(paths))
        measures = morph_measures(clip, render_state(generator, states[0]), render_state(generator, states[1]))
        folder = writer.run_dir / MORPH_DIR / f"{image_id_to_filename(first)}__{image_id_to_filename(second)}"
        labels = [f"{t:.2f}" for t in torch.linspace(0, 1, frames).tolist()]
        writer.write_frames(folder, clip, labels, title=f"{first} -> {second}, by interpolation weight",
                            frame_ms=frame_ms)
        rows.append({"image": f"{first} -> {second}", "edit": "morph", "method": writer.method,
                     "generator": writer.generator, "first": first, "second": second, "frames": frames,
                     **measures, "strip": writer.relative(folder / "strip.png"), "status": "ok"})
    return rows
