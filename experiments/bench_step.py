"""Benchmark: CPU time per inversion step, by method, batch size and execution option.

The generator is the demo prior's 64 px architecture with random weights, the loss 1.5
LPIPS-VGG (random weights, the same compute) + 1.0 MSE. A measurement is one ``invert`` of
``--steps`` steps in a fresh process; its step time is the median of the process's CPU time
(``process_time``, so that other load on a shared machine counts less) between consecutive
step reports from step 2 on: the first steps hold the batch's setup, Adam's first step and any
compilation, whose wall time is printed apart ("first steps"). Every configuration is measured
``--repeats`` times, all configurations in turn, and the fastest is kept.

    python experiments/bench_step.py                              # this checkout's options
    python experiments/bench_step.py --against /path/to/main      # and another checkout, default options

``--modes`` takes execution options as ``key=value`` lists (``default``: none), e.g.
``exact_batch=false`` or ``exact_batch=false,compile=synthesis``; another checkout runs
``default`` only. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from sphinx.generators import Generator
from sphinx.inversion import invert
from sphinx.metrics.lpips import LPIPS

DEMO_ARCHITECTURE = dict(resolution=64, style_dim=256, n_mlp=4, channels={4: 256, 8: 256, 16: 128, 32: 64, 64: 32})
OPTIONS = {"sphinx": dict(spread_draws=0), "w": dict(w_avg_samples=256), "wplus": dict(w_avg_samples=256)}


def parse_mode(text: str) -> dict:
    if text == "default":
        return {}
    options = {}
    for item in text.split(","):
        key, value = item.split("=")
        options[key] = {"true": True, "false": False}.get(value, int(value) if value.isdigit() else value)
    return options


def time_steps(generator, images, lpips, method, steps, execution_options) -> tuple[float, float]:
    """(median CPU ms per step from step 2 on, wall s of the first two steps)."""
    marks: list[tuple[float, float]] = []
    extra = {}
    if execution_options:
        from sphinx.inversion.execution import Execution

        extra["execution"] = Execution(**execution_options)
    started = time.perf_counter()
    invert(
        generator,
        images,
        [f"image{i}" for i in range(len(images))],
        method=method,
        lpips=lpips,
        steps=steps,
        record_curve=False,
        callback=lambda report: marks.append((time.process_time(), time.perf_counter())),
        **OPTIONS[method],
        **extra,
    )
    intervals = [later[0] - earlier[0] for earlier, later in zip(marks[1:], marks[2:])]
    return statistics.median(intervals) * 1e3, marks[1][1] - started


def measure(checkout: Path, method: str, batch: int, mode: str, steps: int, threads: int) -> tuple[float, float]:
    """One measurement in a fresh process running ``checkout``'s code."""
    command = [
        sys.executable,
        __file__,
        "--worker",
        "--methods",
        method,
        "--batches",
        str(batch),
        "--modes",
        mode,
        "--steps",
        str(steps),
        "--threads",
        str(threads),
    ]
    environment = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": str(threads)}
    output = subprocess.run(command, env=environment, capture_output=True, text=True, check=True).stdout
    step_ms, first_seconds = output.split()[-2:]
    return float(step_ms), float(first_seconds)


def worker(args) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    generator = Generator(**DEMO_ARCHITECTURE).eval().requires_grad_(False)
    lpips = LPIPS("vgg", pretrained=False)
    batch = args.batches[0]
    with torch.no_grad():
        images = generator(torch.randn(batch, generator.style_dim, generator=torch.Generator().manual_seed(0))).clamp(
            -1, 1
        )
    time_steps(generator, images[:1], lpips, "wplus", 3, {})  # warm-up: allocator, first kernels
    step_ms, first_seconds = time_steps(
        generator, images, lpips, args.methods[0], args.steps, parse_mode(args.modes[0])
    )
    print(step_ms, first_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(OPTIONS))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--modes", nargs="+", default=["default", "exact_batch=false"])
    parser.add_argument("--against", type=Path, default=None, help="another checkout, measured with default options")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    here = Path(__file__).resolve().parents[1]
    configs = [(here, method, batch, mode) for method in args.methods for batch in args.batches for mode in args.modes]
    if args.against is not None:
        configs += [
            (args.against.resolve(), method, batch, "default") for method in args.methods for batch in args.batches
        ]
    best: dict[tuple, tuple[float, float]] = {}
    for _ in range(args.repeats):
        for config in configs:
            step_ms, first_seconds = measure(*config, args.steps, args.threads)
            earlier = best.get(config, (math.inf, math.inf))
            best[config] = (min(earlier[0], step_ms), min(earlier[1], first_seconds))
    print(
        f"torch {torch.__version__}; {args.threads} thread(s); 64 px demo architecture, random weights; "
        f"{args.steps} steps, median of steps 2..; fastest of {args.repeats} runs, all configurations in turn\n"
    )
    print("| checkout | method | batch | execution | CPU ms / step | CPU ms / image-step | first steps wall s |")
    print("|---|---|---:|---|---:|---:|---:|")
    for config in sorted(configs, key=lambda c: (c[1], c[2], c[0] == here, c[3])):
        checkout, method, batch, mode = config
        step_ms, first_seconds = best[config]
        print(
            f"| {checkout.name} | {method} | {batch} | {mode} | {step_ms:.1f} | {step_ms / batch:.1f} | "
            f"{first_seconds:.1f} |"
        )


if __name__ == "__main__":
    main()
