"""Benchmark: the per-step cost of recording quality-versus-budget curves.

The demo prior (64 px) inverts the bundled samples for a fixed number of steps, with the curve
recorded (the default) and without (``record_curve=False``), alternating the two so that load on
the machine hits both alike; the best of ``--repeats`` runs of each is compared.

    python experiments/bench_curves.py [--steps 500] [--batch 4] [--repeats 3] [--threads 1]

Prints a Markdown table: CPU ms per step (process time, so other load on the machine does not
count) with and without the curve, and the overhead in percent.
"""

from __future__ import annotations

import argparse
import time

import torch

from sphinx.data import BundledSamples, collate_items
from sphinx.generators import load_generator
from sphinx.inversion import invert
from sphinx.metrics.lpips import LPIPS

METHODS = ("sphinx_warm", "wplus")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lpips", action="store_true", help="loss and curve with a random-weight LPIPS-VGG")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = load_generator("demo")
    dataset = BundledSamples(resolution=generator.resolution, limit=args.batch)
    batch = collate_items([dataset[i] for i in range(len(dataset))])
    lpips = LPIPS("vgg", pretrained=False) if args.lpips else None
    loss = {} if args.lpips else dict(lpips_weight=0.0)
    print(
        f"demo prior 64 px, batch {args.batch}, {args.steps} steps, {args.threads} thread(s), "
        f"{'LPIPS-VGG (random weights) + MSE' if args.lpips else 'MSE only'}; best of {args.repeats}\n"
    )
    print("| method | CPU ms/step without curve | CPU ms/step with curve | overhead |")
    print("|---|---:|---:|---:|")
    for method in METHODS:
        best = {True: float("inf"), False: float("inf")}
        for _ in range(args.repeats):
            for record in (False, True):
                started = time.process_time()
                invert(
                    generator,
                    batch["images"],
                    batch["ids"],
                    method=method,
                    steps=args.steps,
                    lpips=lpips,
                    record_curve=record,
                    **loss,
                )
                best[record] = min(best[record], (time.process_time() - started) / args.steps * 1000)
        overhead = (best[True] / best[False] - 1) * 100
        print(f"| {method} | {best[False]:.1f} | {best[True]:.1f} | {overhead:+.1f}% |", flush=True)


if __name__ == "__main__":
    main()
