"""Benchmark for a GPU: SPHInX and W+ steps at 256 px, eager and captured, float32 and bfloat16.

On a CUDA machine, in under 5 minutes, prints for each method x batch (1, 8, 32) x precision x
execution (eager; ``compile=step``: synthesis and LPIPS as CUDA graphs, fused Adam) the step
time, images/s, peak memory and the FLOP-floor ratio: achieved TFLOP/s over the device's
bfloat16 dense peak (the datasheet's where the device is known, else a large bf16 matmul's). Then
the peak memory of 1024 px SPHInX at batch 4. Generators are config-f with random weights, LPIPS
has random weights (the same compute as the pretrained one). Captured configurations compile
first; they run last and are skipped, saying so, once ``--budget`` seconds are spent.

    python experiments/bench_gpu.py                      # on a GPU
    python experiments/bench_gpu.py --device cpu --quick # smoke test: 32 px, eager, seconds

Step time: wall time between the reports of step ``--warmup`` and the last step, the device
synchronised at both; the step itself never waits for the host.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from sphinx.generators import Generator
from sphinx.inversion import invert
from sphinx.inversion.execution import Execution
from sphinx.metrics.lpips import LPIPS

# Dense bfloat16 tensor-core peaks from the vendors' datasheets, TFLOP/s (no sparsity).
BF16_PEAK_TFLOPS = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 PCIe": 756.0,
    "H100": 756.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10G": 70.0,
    "A10": 125.0,
    "RTX 4090": 165.0,
    "V100": 125.0,
}
METHOD_OPTIONS = {"sphinx": dict(spread_draws=0), "wplus": dict(w_avg_samples=1000)}


def bf16_peak(device: torch.device) -> tuple[float | None, str]:
    """The device's dense bf16 peak in TFLOP/s and where the number comes from."""
    if device.type != "cuda":
        return None, "n/a on CPU"
    name = torch.cuda.get_device_name(device)
    for key, peak in BF16_PEAK_TFLOPS.items():
        if key in name:
            return peak, f"{name}, datasheet"
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ a
    torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(10):
        a @ a
    torch.cuda.synchronize(device)
    return 10 * 2 * 8192**3 / (time.perf_counter() - started) / 1e12, f"{name}, measured 8192^2 bf16 matmul"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_flops(generator, images, lpips, method: str) -> float:
    """FLOPs of one step for one image (matmuls and convolutions, forward and backward)."""
    counts = []
    for steps in (1, 2):
        with FlopCounterMode(display=False) as counter:
            invert(
                generator,
                images[:1],
                ["flops"],
                method=method,
                lpips=lpips,
                steps=steps,
                record_curve=False,
                **METHOD_OPTIONS[method],
            )
        counts.append(counter.get_total_flops())
    return counts[1] - counts[0]


def run(generator, images, lpips, method: str, execution: Execution, steps: int, warmup: int):
    """(seconds per step, peak MiB) of one inversion."""
    device = images.device
    marks: dict[int, float] = {}

    def report(step_report) -> None:
        if step_report.step in (warmup, steps - 1):
            synchronize(device)
            marks[step_report.step] = time.perf_counter()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    invert(
        generator,
        images,
        [f"image{i}" for i in range(len(images))],
        method=method,
        lpips=lpips,
        steps=steps,
        record_curve=False,
        callback=report,
        execution=execution,
        **METHOD_OPTIONS[method],
    )
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    return (marks[steps - 1] - marks[warmup]) / (steps - 1 - warmup), peak


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="32 px, batches 1 and 2, eager only: a smoke test")
    parser.add_argument("--budget", type=float, default=270.0, help="seconds after which captured runs are skipped")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    device = torch.device(args.device)
    if args.quick:
        resolution, style_dim, batches, steps, warmup, captured = 32, 64, [1, 2], 4, 1, False
        channels = {4: 32, 8: 32, 16: 24, 32: 16}
    else:
        resolution, style_dim, batches, steps, warmup, captured = 256, 512, [1, 8, 32], 12, 5, True
        channels = None
    torch.manual_seed(0)
    generator = Generator(resolution, style_dim, 8, channels=channels).to(device).eval().requires_grad_(False)
    lpips = LPIPS("vgg", pretrained=False).to(device)
    with torch.no_grad():
        images = generator(torch.randn(max(batches), style_dim, device=device)).clamp(-1, 1)
    peak, peak_source = bf16_peak(device)
    print(
        f"torch {torch.__version__}; device {device} ({peak_source}"
        f"{f': {peak:.0f} TFLOP/s bf16' if peak else ''}); {resolution} px config-f, random weights; "
        f"steps {steps}, timed from step {warmup}\n"
    )
    flops = {method: step_flops(generator, images, lpips, method) for method in METHOD_OPTIONS}
    for method, count in flops.items():
        print(f"{method}: {count / 1e9:.1f} GFLOP per image-step (matmuls and convolutions, forward + backward)")
    print("\n| method | batch | precision | execution | ms / step | images/s | peak MiB | TFLOP/s | of bf16 peak |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|")
    configs = [
        (method, batch, precision, compile_mode)
        for compile_mode in ("none", "step")
        for precision in ("float32", "bfloat16")
        for method in METHOD_OPTIONS
        for batch in batches
        if compile_mode == "none" or captured
    ]
    for method, batch, precision, compile_mode in configs:
        label = "eager" if compile_mode == "none" else "captured (compile=step)"
        if compile_mode != "none" and time.perf_counter() - started > args.budget:
            print(
                f"| {method} | {batch} | {precision} | {label} | skipped: past the {args.budget:.0f} s budget "
                "| | | | |",
                flush=True,
            )
            continue
        seconds, peak_mib = run(
            generator,
            images[:batch],
            lpips,
            method,
            Execution(exact_batch=False, compile=compile_mode, precision=precision),
            steps,
            warmup,
        )
        achieved = flops[method] * batch / seconds / 1e12
        ratio = f"{achieved / peak:.1%}" if peak else "n/a"
        print(
            f"| {method} | {batch} | {precision} | {label} | {seconds * 1e3:.1f} | {batch / seconds:.1f} | "
            f"{peak_mib:.0f} | {achieved:.2f} | {ratio} |",
            flush=True,
        )
    if device.type == "cuda" and not args.quick:
        del images
        large = Generator(1024, 512, 8).to(device).eval().requires_grad_(False)
        with torch.no_grad():
            targets = large(torch.randn(4, 512, device=device)).clamp(-1, 1)
        for precision in ("float32", "bfloat16"):
            seconds, peak_mib = run(large, targets, lpips, "sphinx", Execution(precision=precision), 4, 1)
            print(
                f"\n1024 px SPHInX, batch 4, {precision}, eager: peak {peak_mib:.0f} MiB, {seconds * 1e3:.0f} ms / step"
            )
    else:
        print("\n1024 px SPHInX memory: needs a CUDA device (skipped)")
    print(f"\ntotal {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
