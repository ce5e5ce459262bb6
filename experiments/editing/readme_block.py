"""Writes the README's editing block and picture from the runs of ``run_all.sh``.

    python experiments/editing/readme_block.py /tmp/card     # the scratch dir run_all.sh used

It stacks the astronaut's rotate, brightness, morph and GANSpace-direction strips (each labelled
by the run) into ``experiments/editing/editing.png``, and replaces the text between the README's
``editing`` markers with: the picture, the learned-versus-control table of every attribute run
(kept inversion and the authors' joint fit), the reconstruction PSNR next to the main job's, and
each run's compute time, read from the runs' ``results.csv`` and ``summary.json``.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from readme_block import replace_block  # noqa: E402

ATTRIBUTES = {"rotate": ("30", "°"), "brightness": ("1.45", "x"), "zoom": ("1.375", "x")}
STRIPS = ("rotate/images/astronaut", "brightness/images/astronaut", "morph/morphs/astronaut__chelsea")
STRIPS += ("direction/images/astronaut",)


def rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def wall_seconds(run_dir: Path) -> float:
    """A run's wall time: from its accepted config (written once the job is built and holds the run
    dir, so loading the generator is left out) to its summary, written last."""
    return (run_dir / "summary.json").stat().st_mtime - (run_dir / ".hydra" / "config.yaml").stat().st_mtime


def picture(scratch: Path) -> None:
    strips = [np.asarray(Image.open(scratch / folder / "strip.png").convert("RGB")) for folder in STRIPS]
    width = max(strip.shape[1] for strip in strips)
    padded = [np.pad(s, ((0, 6), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in strips]
    Image.fromarray(np.concatenate(padded)).save(HERE / "editing.png", optimize=True)


def attribute_table(scratch: Path, main: dict[str, float]) -> list[str]:
    lines = [
        "| transform | inversion | image | reconstruction (main job) | asked | achieved: learned / control | "
        "held-out PSNR: learned / control / no edit | flags |",
        "|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for name, (held_out, unit) in ATTRIBUTES.items():
        for run in (name, f"{name}_joint"):
            summary = json.loads((scratch / run / "summary.json").read_text())
            comparison, inversion = summary["control"], "kept" if run == name else "joint"
            for row in rows(scratch / run / "results.csv"):
                identity = next(k for k in row if k.startswith("psnr@"))
                lines.append(
                    f"| {name} | {inversion} | {row['image']} | {float(row[identity]):.2f} ({main[row['image']]:.2f})"
                    f" | {held_out}{unit} | {float(row[f'achieved@{held_out}']):.3g} / "
                    f"{float(row[f'control_achieved@{held_out}']):.3g} | {float(row['psnr_heldout']):.2f} / "
                    f"{float(row['control_psnr_heldout']):.2f} / {float(row['psnr_identity']):.2f} | "
                    f"{row['flags'] or 'none'} |"
                )
            verdict = "beats" if comparison["learned"] else "does not beat"
            verdicts.append(
                f"- {name}, {inversion}: the learned direction {verdict} its frozen control "
                f"({comparison['beats']} of {comparison['images']} images; mean distance from the asked factors "
                f"{comparison['learned_error']:.3g}{unit} vs {comparison['control_error']:.3g}{unit}); "
                f"{wall_seconds(scratch / run):.0f} s for both runs"
            )
    return lines + [""] + verdicts


def main(scratch: Path) -> None:
    picture(scratch)
    main_psnr = {row["image"]: float(row["psnr"]) for row in rows(scratch / "main" / "results.csv")}
    seconds = {run: wall_seconds(scratch / run) for run in ("morph", "direction")}
    block = "\n".join(
        [
            "![rotate, brightness, morph and direction strips of the astronaut](experiments/editing/editing.png)",
            "",
            "The astronaut's edits on the main job's inversion (`sphinx_warm`, 500 steps, demo prior): the",
            "rotate and brightness walks (top row: G(w + a D); bottom row: the photo transformed by the factor",
            "each frame stands for), the morph into chelsea, and W's first principal axis (GANSpace). The",
            "attribute runs keep the main job's inversions and learn only each direction and its alphas",
            "(`edit.fit_inversion: false`, the default); each also runs its control, the direction frozen at its random",
            "start. *Achieved* is the factor t at which T(reconstruction, t) best matches the frame rendered",
            "for the asked factor. The *joint* rows fit the inversion again together with the direction, as",
            "the authors do, from the same inversions:",
            "",
            *attribute_table(scratch, main_psnr),
            f"- morph of 3 images: {seconds['morph']:.0f} s; direction on 2 images: {seconds['direction']:.0f} s "
            "(both on the main job's saved inversions)",
            "",
            "Regenerate with `bash experiments/editing/run_all.sh /tmp/card` (it runs this script last);",
            "the times are each run's wall time on one thread of this 2-core machine, start to summary, with",
            "two attribute runs at a time (each attribute run learns its direction and then its control).",
        ]
    )
    replace_block("editing", block)
    print(block)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/editing_card"))
