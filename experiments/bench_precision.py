"""Quality of bfloat16 autocast against float32, and of the whole-batch CPU path against the exact one.

Inverts the bundled OOD samples into the demo prior (64 px), MSE only (works offline), once per
execution option, and prints mean PSNR / SSIM against the clean targets and the largest
difference from the float32 exact run's reconstructions. bfloat16 runs under CPU autocast here
(the same rounding as on a GPU, not its speed). Run from the repository root::

    python experiments/bench_precision.py --steps 300
"""

from __future__ import annotations

import argparse

import torch

from sphinx.data import BundledSamples
from sphinx.generators import load_generator
from sphinx.inversion import invert
from sphinx.inversion.execution import Execution
from sphinx.metrics.image_quality import psnr, ssim

MSE_ONLY = dict(lpips_weight=0.0, mse_weight=1.0)
EXECUTIONS = {
    "float32, exact batch (default)": Execution(),
    "float32, exact_batch=false": Execution(exact_batch=False),
    "bfloat16": Execution(precision="bfloat16"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--methods", nargs="+", default=["wplus", "sphinx_warm"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = load_generator("demo")
    targets, ids = BundledSamples(resolution=generator.resolution).batch()
    print(
        f"Demo prior, {len(ids)} bundled samples in one batch, {args.steps} steps, MSE only, seed 0, one CPU thread.\n"
    )
    print("| method | execution | PSNR dB | SSIM | max abs diff from float32 exact |")
    print("|---|---|---:|---:|---:|")
    for method in args.methods:
        reference = None
        for name, execution in EXECUTIONS.items():
            result = invert(
                generator, targets, ids, method=method, seed=0, steps=args.steps, execution=execution, **MSE_ONLY
            )
            reference = result.reconstructions if reference is None else reference
            difference = (result.reconstructions - reference).abs().max()
            print(
                f"| {method} | {name} | {psnr(result.reconstructions, targets).mean():.2f} | "
                f"{ssim(result.reconstructions, targets).mean():.3f} | {difference:.1e} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
