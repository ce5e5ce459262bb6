"""Benchmark: what in-batch checkpointing costs per step.

The demo prior (64 px) inverts a batch of B bundled samples with SPHInX (MSE only, as offline
runs do) for a fixed number of steps, once without a checkpoint and once saving the batch's state
every N steps (``checkpoint_every``), each repeated and the fastest taken. Prints the step times,
the overhead in percent and the size of one checkpoint file.

    python experiments/bench_checkpoint.py [--every 50] [--steps 200] [--batch 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from sphinx.data.datasets import BundledSamples
from sphinx.generators import load_generator
from sphinx.inversion import invert
from sphinx.inversion.batch_checkpoint import BatchCheckpoint


def timed(generator, images, ids, *, steps: int, checkpoint: BatchCheckpoint | None) -> float:
    start = time.perf_counter()
    invert(
        generator, images, ids, method="sphinx", steps=steps, lpips_weight=0.0, spread_draws=0, checkpoint=checkpoint
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = load_generator("demo")
    data = BundledSamples(resolution=generator.resolution, limit=args.batch)
    images = torch.stack([data[i].image for i in range(len(data))])
    ids = list(data.ids)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "inflight.pt"
        plain, saving = [], []
        for _ in range(args.repeats):  # interleaved, so that machine load drifts hit both alike
            plain.append(timed(generator, images, ids, steps=args.steps, checkpoint=None))
            path.unlink(missing_ok=True)
            saving.append(
                timed(generator, images, ids, steps=args.steps, checkpoint=BatchCheckpoint(path, every=args.every))
            )
        size = path.stat().st_size
    base, with_checkpoint = min(plain) / args.steps, min(saving) / args.steps
    print(f"demo prior, sphinx (MSE), batch {args.batch}, {args.steps} steps, 1 thread, best of {args.repeats}")
    print(
        f"no checkpoint: {1e3 * base:.2f} ms/step; checkpoint_every={args.every}: "
        f"{1e3 * with_checkpoint:.2f} ms/step; overhead {100 * (with_checkpoint / base - 1):+.1f}%; "
        f"checkpoint file {size / 2**20:.1f} MiB"
    )


if __name__ == "__main__":
    main()
