"""Benchmark scripts stay runnable where CI runs: smoke tests, not measurements."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # an experiments/ script, not a module of the package
def test_bench_gpu_quick_on_cpu_smoke(capsys):
    load_script("bench_gpu").main(["--device", "cpu", "--quick"])
    printed = capsys.readouterr().out
    for method in ("sphinx", "wplus"):
        for precision in ("float32", "bfloat16"):
            assert f"| {method} | 2 | {precision} | eager |" in printed
    assert "GFLOP per image-step" in printed
