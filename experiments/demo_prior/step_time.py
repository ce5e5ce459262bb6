"""Time one W+ inversion step of the demo prior (batch 1, 64 px, forward + backward + Adam) on CPU.

Run from the repository root::

    python experiments/demo_prior/step_time.py --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sphinx.generators import load_generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generator", default="demo")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = load_generator(args.generator)
    ws = generator.latent_avg.reshape(1, 1, -1).repeat(1, generator.n_latent, 1).requires_grad_(True)
    target = torch.zeros(1, 3, generator.resolution, generator.resolution)
    optimizer = torch.optim.Adam([ws], lr=0.05)
    times = []
    for step in range(args.steps + 20):
        started = time.perf_counter()
        loss = (generator.synthesis(ws) - target).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= 20:  # warm-up steps excluded
            times.append(time.perf_counter() - started)
    print(
        f"{args.generator}: median {1000 * statistics.median(times):.1f} ms, "
        f"mean {1000 * statistics.fmean(times):.1f} ms per step over {args.steps} steps, "
        f"{args.threads} thread(s)"
    )


if __name__ == "__main__":
    main()
