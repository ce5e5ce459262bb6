"""SPHInX warm starts against the authors' initialization and W+, at the demo budget.

Inverts the 7 bundled OOD samples into the demo prior for 500 steps (the main job's budget),
MSE only (offline: no VGG weights), one batch per variant, and prints PSNR / SSIM means and
the vicinity spread. Run from the repository root::

    python experiments/warm_start/compare.py   # writes results.md here and the README's table
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from sphinx.data import BundledSamples
from sphinx.generators import load_generator
from sphinx.inversion import invert
from sphinx.metrics.image_quality import psnr, ssim

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from readme_block import replace_block  # noqa: E402

MSE_ONLY = dict(lpips_weight=0.0, mse_weight=1.0)
VARIANTS = {  # name -> (method, overrides)
    "wplus": ("wplus", {}),
    "sphinx (authors' init)": ("sphinx", {}),
    "sphinx_ps": ("sphinx_ps", {}),
    "sphinx_ps_pc": ("sphinx_ps_pc", {}),
    "sphinx content_init=constant": ("sphinx", dict(content_init="constant")),
    "sphinx content_init=constant style_init=w_avg": ("sphinx", dict(content_init="constant", style_init="w_avg")),
    "sphinx_ps style_init=w_avg": ("sphinx_ps", dict(style_init="w_avg")),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite the README's table")
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = load_generator("demo")
    targets, ids = BundledSamples(resolution=generator.resolution).batch()
    lines = [
        f"Demo prior, {len(ids)} bundled samples, {args.steps} steps, MSE only, seed 0, one CPU thread.",
        "",
        "| variant | PSNR dB | SSIM | vicinity spread |",
        "|---|---|---|---|",
    ]
    for name in args.variants:
        method, overrides = VARIANTS[name]
        result = invert(generator, targets, ids, method=method, seed=0, steps=args.steps, **MSE_ONLY, **overrides)
        scores_psnr, scores_ssim = psnr(result.reconstructions, targets), ssim(result.reconstructions, targets)
        spread = "" if result.vicinity_spread is None else f"{result.vicinity_spread.mean():.3f}"
        line = f"| {name} | {scores_psnr.mean():.2f} ± {scores_psnr.std():.2f} | {scores_ssim.mean():.3f} | {spread} |"
        print(line, flush=True)
        lines.append(line)
    lines += ["", f"Command: `python experiments/warm_start/compare.py --steps {args.steps}`"]
    args.out.write_text("\n".join(lines) + "\n")
    if not args.no_readme and args.variants == list(VARIANTS):
        replace_block("warm-start", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
