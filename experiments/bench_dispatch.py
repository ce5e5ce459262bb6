"""Benchmark: dispatched ops and host synchronisations per inversion step, by method and batch.

Every dispatched aten op is at least one kernel launch on a GPU, and every host sync stalls the
launch queue, so these counts bound the eager step's host overhead there; they are counted on a
CPU with a dispatch hook (``tests/helpers/dispatch.py``). The generator is the demo prior's 64 px
architecture with random weights; the loss LPIPS-VGG (random weights, same ops) + MSE.

    python experiments/bench_dispatch.py
    PYTHONPATH=/path/to/other/checkout python experiments/bench_dispatch.py   # its code, same counter

The counter is loaded from this script's checkout by path, so that another checkout's code (on
PYTHONPATH) is measured by the same counter. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import statistics
import sys
from pathlib import Path

import torch

import sphinx
from sphinx.generators import Generator
from sphinx.inversion import invert
from sphinx.metrics.lpips import LPIPS

COUNTER_FILE = Path(__file__).resolve().parents[1] / "tests" / "helpers" / "dispatch.py"
DEMO_ARCHITECTURE = dict(resolution=64, style_dim=256, n_mlp=4, channels={4: 256, 8: 256, 16: 128, 32: 64, 64: 32})
SHORT = {
    "sphinx": dict(steps=8, spread_draws=0),
    "sphinx_ps": dict(steps=8, spread_draws=0),
    "w": dict(steps=8, w_avg_samples=64),
    "wplus": dict(steps=8, w_avg_samples=64),
    "wplus_noise": dict(steps=8, noise_steps=4, w_avg_samples=64),
    "pti": dict(pivot_steps=4, steps=4, w_avg_samples=64, lpips_threshold=0.0),
}


def load_counter():
    spec = importlib.util.spec_from_file_location("step_dispatch_counter", COUNTER_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module.StepDispatchCounter


def count(counter_class, generator, images, lpips, method, batch, options):
    counter = counter_class()
    with counter:
        invert(
            generator,
            images[:batch],
            [f"image{i}" for i in range(batch)],
            method=method,
            lpips=lpips,
            callback=counter.mark,
            record_curve=False,
            **options,
            **SHORT[method],
        )
    steps = counter.steps[1:]  # the first count holds the batch's setup
    ops = [s.ops for s in steps]
    syncs = [s.syncs for s in steps]
    return statistics.median(ops), max(ops), statistics.median(syncs), max(syncs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(SHORT))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    generator = Generator(**DEMO_ARCHITECTURE).eval().requires_grad_(False)
    lpips = LPIPS("vgg", pretrained=False)
    with torch.no_grad():
        images = generator(
            torch.randn(max(args.batches), generator.style_dim, generator=torch.Generator().manual_seed(0))
        ).clamp(-1, 1)
    counter_class = load_counter()
    knobs = inspect.signature(invert).parameters
    modes = [{}]
    if "execution" in knobs:
        from sphinx.inversion.execution import Execution

        modes.append({"execution": Execution(exact_batch=False)})
    print(
        f"sphinx from {Path(sphinx.__file__).parent}; torch {torch.__version__}; 64 px demo architecture; "
        "counts of steps 1.. (step 0 holds the setup)\n"
    )
    print(
        "| method | batch | exact_batch | ops / step (median) | ops / step (max) | host syncs / step (median) "
        "| host syncs / step (max) |"
    )
    print("|---|---:|---|---:|---:|---:|---:|")
    for method in args.methods:
        for batch in args.batches:
            if method == "pti" and batch > 1:
                continue  # one image per batch
            for options in modes:
                if options and batch == 1:
                    continue  # one image runs whole either way
                median_ops, max_ops, median_syncs, max_syncs = count(
                    counter_class, generator, images, lpips, method, batch, options
                )
                exact = "n/a" if "execution" not in knobs else str("execution" not in options).lower()
                print(
                    f"| {method} | {batch} | {exact} | {median_ops:.0f} | {max_ops} | {median_syncs:.0f} | "
                    f"{max_syncs} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
