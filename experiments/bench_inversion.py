"""Benchmark: inversion step time and images/s by batch size, and batching versus sequential.

A 64 px generator (the demo prior's architecture, random weights unless --generator is given)
inverts B images with SPHInX for a fixed number of steps. Then the same B images are inverted
one at a time; the per-image results must agree (max abs diff <= 1e-4), and the ratio of wall
times is the speedup that batching buys.

    python experiments/bench_inversion.py [--generator demo] [--threads 1] [--steps 30]

Prints a Markdown table; paste it into experiments/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from sphinx.generators import Generator, describe, load_generator
from sphinx.inversion import invert
from sphinx.metrics.lpips import LPIPS

DEMO_ARCHITECTURE = dict(resolution=64, style_dim=256, n_mlp=4, channels={4: 256, 8: 256, 16: 128, 32: 64, 64: 32})


def build_generator(source: str | None) -> Generator:
    if source:
        return load_generator(source)
    torch.manual_seed(0)
    return Generator(**DEMO_ARCHITECTURE).eval().requires_grad_(False)


def timed_inversion(generator, images, ids, lpips, method, steps):
    start = time.perf_counter()
    result = (
        invert(generator, images, ids, method=method, lpips=lpips, steps=steps, spread_draws=0)
        if method.startswith("sphinx")
        else invert(generator, images, ids, method=method, lpips=lpips, steps=steps)
    )
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", default=None, help="checkpoint or preset; default: random demo architecture")
    parser.add_argument("--method", default="sphinx")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = build_generator(args.generator)
    lpips = LPIPS("vgg", pretrained=False)  # same compute as the pretrained network
    print(
        f"torch {torch.__version__}, CPU {platform.machine()}, {args.threads} thread(s); "
        f"method {args.method}, {args.steps} steps; generator {describe(generator)}\n"
    )
    largest = max(args.batches)
    with torch.no_grad():
        images = generator(torch.randn(largest, generator.style_dim, generator=torch.Generator().manual_seed(0))).clamp(
            -1, 1
        )
    ids = [f"image{i}" for i in range(largest)]
    timed_inversion(generator, images[:1], ids[:1], lpips, args.method, 2)  # warm-up

    print(
        "| batch | ms / step | images/s (steps/s x B) | batched wall s | sequential wall s | speedup | max abs diff |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for batch in args.batches:
        batched, batched_seconds = timed_inversion(
            generator, images[:batch], ids[:batch], lpips, args.method, args.steps
        )
        sequential_seconds, worst = 0.0, 0.0
        for index in range(batch):
            alone, seconds = timed_inversion(
                generator, images[index : index + 1], ids[index : index + 1], lpips, args.method, args.steps
            )
            sequential_seconds += seconds
            worst = max(worst, (alone.reconstructions[0] - batched.reconstructions[index]).abs().max().item())
        step_ms = batched_seconds / args.steps * 1e3
        print(
            f"| {batch} | {step_ms:.1f} | {batch * args.steps / batched_seconds:.1f} | {batched_seconds:.2f} | "
            f"{sequential_seconds:.2f} | {sequential_seconds / batched_seconds:.2f}x | {worst:.1e} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
