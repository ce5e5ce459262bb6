"""Benchmark: generator forward+backward time per inversion step and peak memory.

One "step" is what every inversion method pays: render a batch from W+ latents and per-sample
noise that require grad (the generator frozen), then backpropagate a scalar loss. Each
configuration runs in its own process so that peak memory is that configuration's alone.

    python experiments/bench_generator.py                 # CPU table
    python experiments/bench_generator.py --device cuda   # adds 256/1024 in float32 and bfloat16

Prints a Markdown table; paste it into experiments/RESULTS.md.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import resource
import time

import torch

CPU_CASES = [
    # name, resolution, style_dim, channel table
    ("32 px tiny", 32, 64, {4: 32, 8: 32, 16: 24, 32: 16}),
    ("64 px small", 64, 128, {4: 128, 8: 128, 16: 64, 32: 32, 64: 16}),
    ("256 px FFHQ config-f", 256, 512, None),
]
GPU_CASES = [("256 px FFHQ config-f", 256, 512, None), ("1024 px FFHQ config-f", 1024, 512, None)]


def measure(name, resolution, style_dim, channels, batch, device, dtype, steps, threads, queue):
    from sphinx.generators import Generator

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    generator = Generator(resolution, style_dim, 8 if style_dim == 512 else 2, channels=channels)
    generator = generator.to(device).eval().requires_grad_(False)
    ws = torch.randn(batch, generator.n_latent, style_dim, device=device, requires_grad=True)
    noise = [n.requires_grad_() for n in generator.make_noise(batch)]
    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step():
        with torch.autocast(device_type=device, dtype=dtype, enabled=dtype != torch.float32):
            image = generator.synthesis(ws, noise=noise)
        image.float().square().mean().backward()

    for _ in range(3):  # warm-up: allocator, kernels, autotuning
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    milliseconds = (time.perf_counter() - start) / steps * 1e3
    if device == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:  # growth of the resident set over the model and inputs, in this fresh process
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_kib) / 1024
    queue.put((name, batch, str(dtype).removeprefix("torch."), milliseconds, batch / milliseconds * 1e3, peak_mib))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU intra-op threads")
    args = parser.parse_args()
    if args.device == "cuda":
        cases, dtypes = GPU_CASES, [torch.float32, torch.bfloat16]
        device_name = torch.cuda.get_device_name()
    else:
        cases, dtypes = CPU_CASES, [torch.float32]
        device_name = f"{platform.processor() or platform.machine()}, {args.threads} thread(s)"
    print(f"torch {torch.__version__}, {args.device}: {device_name}, {args.steps} timed steps\n")
    memory_column = "peak GPU MiB" if args.device == "cuda" else "peak RSS growth MiB"
    print(f"| generator | batch | dtype | ms / step | images/s | {memory_column} |")
    print("|---|---:|---|---:|---:|---:|")
    context = mp.get_context("spawn")
    for name, resolution, style_dim, channels in cases:
        for dtype in dtypes:
            for batch in args.batches:
                queue = context.Queue()
                process = context.Process(
                    target=measure,
                    args=(
                        name,
                        resolution,
                        style_dim,
                        channels,
                        batch,
                        args.device,
                        dtype,
                        args.steps,
                        args.threads,
                        queue,
                    ),
                )
                process.start()
                row = queue.get()
                process.join()
                print("| {} | {} | {} | {:.1f} | {:.1f} | {:.0f} |".format(*row), flush=True)


if __name__ == "__main__":
    main()
