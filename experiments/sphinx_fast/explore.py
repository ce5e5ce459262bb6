"""The search for a faster SPHInX: variants that keep the fresh draw every step, at 100-1000 steps.

Each variant inverts the 7 bundled OOD samples into the demo prior (MSE only: offline, no VGG
weights; seed 0; one CPU thread) once per budget, each budget its own run (its schedule ramps to
its own end), and keeps every image's PSNR and vicinity spread in ``runs/<variant>@<steps>.csv``.
The reference is the authors' ``sphinx`` at its full 5000 steps. A run already on disk is not
repeated, so the search can be spread over sessions and processes::

    python experiments/sphinx_fast/explore.py run reference            # the authors' 5000 steps
    python experiments/sphinx_fast/explore.py run warm lr3e-3 ...       # variants (all budgets)
    python experiments/sphinx_fast/explore.py table                     # results.md and the README's table

The table gives each variant's mean PSNR at each budget, its spread at 500 steps, and on how many
of the 7 images its 500-step PSNR reaches the authors' 5000-step PSNR: the target is 6 of 7.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from sphinx.data import BundledSamples
from sphinx.generators import load_generator
from sphinx.inversion import invert
from sphinx.inversion.execution import Execution
from sphinx.metrics.image_quality import psnr

HERE = Path(__file__).resolve().parent
RUNS = HERE / "runs"
sys.path.insert(0, str(HERE.parent))
from readme_block import replace_block  # noqa: E402

BUDGETS = (100, 300, 500, 1000)
MSE_ONLY = dict(lpips_weight=0.0, mse_weight=1.0)
WARM = dict(content_init="constant")
# name -> (method, options, budgets): every variant keeps vicinal=True, a fresh draw every step.
VARIANTS = {
    "reference": ("sphinx", {}, (5000,)),
    "warm": ("sphinx", WARM, BUDGETS),
    "warm lr3e-3": ("sphinx", {**WARM, "lr": 3e-3}, BUDGETS),
    "warm lr5e-3": ("sphinx", {**WARM, "lr": 5e-3}, BUDGETS),
    "warm lr1e-2": ("sphinx", {**WARM, "lr": 1e-2}, BUDGETS),
    "warm lr3e-3 all": ("sphinx", {**WARM, "lr": 3e-3, "schedule": "all"}, BUDGETS),
}


def run_path(variant: str, steps: int) -> Path:
    return RUNS / f"{variant.replace(' ', '_')}@{steps}.csv"


def run(variants: list[str]) -> None:
    torch.set_num_threads(1)
    generator = load_generator("demo")
    targets, ids = BundledSamples(resolution=generator.resolution).batch()
    for name in variants:
        method, options, budgets = VARIANTS[name]
        for steps in budgets:
            path = run_path(name, steps)
            if path.is_file():
                continue
            started = time.perf_counter()
            result = invert(
                generator,
                targets,
                ids,
                method=method,
                seed=0,
                steps=steps,
                execution=Execution(exact_batch=False),  # the main job's setting: speed over batch invariance
                **MSE_ONLY,
                **options,
            )
            seconds = time.perf_counter() - started
            scores, spread = psnr(result.reconstructions, targets).tolist(), result.vicinity_spread.tolist()
            RUNS.mkdir(exist_ok=True)
            temporary = path.with_suffix(".tmp")
            with open(temporary, "w", newline="") as stream:
                writer = csv.writer(stream)
                writer.writerow(["image", "psnr", "vicinity_spread", "seconds"])
                writer.writerows(
                    [image, f"{p:.4f}", f"{s:.4f}", f"{seconds:.1f}"] for image, p, s in zip(ids, scores, spread)
                )
            temporary.replace(path)  # a killed run leaves no half table
            print(f"{name} @ {steps}: PSNR {statistics.fmean(scores):.2f} dB, {seconds:.0f} s", flush=True)


def read(variant: str, steps: int) -> dict[str, tuple[float, float]] | None:
    path = run_path(variant, steps)
    if not path.is_file():
        return None
    with open(path, newline="") as stream:
        return {row["image"]: (float(row["psnr"]), float(row["vicinity_spread"])) for row in csv.DictReader(stream)}


def reaching(means: list[tuple[int, float]], line: float | None) -> str:
    """The budget at which the mean PSNR reaches ``line``, interpolated in log-steps between the
    budgets run (each its own run, so an estimate), or "not within 1000"."""
    if line is None or not means:
        return ""
    for (low, below), (high, above) in zip([(0, -math.inf), *means], means):
        if above >= line:
            if below == -math.inf:
                return f"<= {high}"
            share = (line - below) / (above - below)
            return f"≈{math.exp(math.log(low) + share * (math.log(high) - math.log(low))):.0f}"
    return f"not within {means[-1][0]}"


def table() -> str:
    reference = read("reference", 5000)
    lines = [
        "Demo prior, the 7 bundled samples, MSE only, seed 0, one CPU thread; each budget its own run.",
        "",
        "| variant | PSNR@100 | @300 | @500 | @1000 | spread@500 | images at 500 >= authors' 5000 | mean reaches it at |",
        "|---|---|---|---|---|---|---|---|",
    ]
    line = None
    if reference is not None:
        line = statistics.fmean(p for p, _ in reference.values())
        spread = statistics.fmean(s for _, s in reference.values())
        lines.insert(1, f"The authors' `sphinx` at 5000 steps: {line:.2f} dB, spread {spread:.3f} (the line to reach).")
    for name, (_, _, budgets) in VARIANTS.items():
        if name == "reference":
            continue
        runs = {steps: read(name, steps) for steps in budgets}
        cells = [f"{statistics.fmean(p for p, _ in runs[s].values()):.2f}" if runs[s] else "" for s in BUDGETS]
        at500 = runs.get(500)
        spread = f"{statistics.fmean(s for _, s in at500.values()):.3f}" if at500 else ""
        reached = ""
        if at500 and reference:
            count = sum(at500[image][0] >= reference[image][0] for image in reference)
            reached = f"{count} of {len(reference)}"
        means = [(s, statistics.fmean(p for p, _ in runs[s].values())) for s in BUDGETS if runs.get(s)]
        lines.append(f"| {name} | " + " | ".join([*cells, spread, reached, reaching(means, line)]) + " |")
    return "\n".join(lines) + "\n\nCommand: `python experiments/sphinx_fast/explore.py table`\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    runner = sub.add_parser("run", help="run variants (every budget not yet on disk)")
    runner.add_argument("variants", nargs="+", choices=list(VARIANTS))
    sub.add_parser("table", help="write results.md from the runs on disk")
    args = parser.parse_args()
    if args.command == "run":
        run(args.variants)
    else:
        text = table()
        (HERE / "results.md").write_text(text)
        replace_block("sphinx-fast", text)
        print(text)


if __name__ == "__main__":
    main()
