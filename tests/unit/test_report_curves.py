"""Quality versus budget in the report: curves per method, the budget table, the crossings."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from test_report import result_row, write_run

from sphinx.report import build_report
from sphinx.report.curves import MethodCurve, crossings, first_reaching, read_curves
from sphinx.rundir.writer import CURVE_COLUMNS

STEPS = [0, 1, 2, 3, 6, 10, 18, 32, 56, 100]


def slow_but_better(step: int) -> float:  # 10 dB at the start, 30 dB after 100 steps
    return 10 + 20 * np.log1p(step) / np.log1p(100)


def fast_but_worse(step: int) -> float:  # 20 dB at once, 24 dB at the end
    return 20 + 4 * np.log1p(step) / np.log1p(100)


def write_curves(run_dir: Path, method: str, curve, images=("a", "b"), offsets=(-0.5, 0.5)) -> None:
    rows = [
        result_row(image, method, "none", psnr=float(curve(100) + offset)) for image, offset in zip(images, offsets)
    ]
    write_run(run_dir, rows)
    with (run_dir / "curves.csv").open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=CURVE_COLUMNS)
        writer.writeheader()
        for image, offset in zip(images, offsets):
            for step in STEPS:
                writer.writerow(
                    {
                        "image": image,
                        "method": method,
                        "degradation": "none",
                        "generator": "demo",
                        "step": step,
                        "seconds": step * 0.1,
                        "psnr": curve(step) + offset,
                        "ssim": 0.5,
                        "lpips": "",
                    }
                )


@pytest.fixture
def sweep(tmp_path) -> Path:
    write_curves(tmp_path / "0_slow", "sphinx", slow_but_better)
    write_curves(tmp_path / "1_fast", "wplus", fast_but_worse)
    return tmp_path


def test_curves_average_over_images_with_a_spread(sweep):
    curves = {c.method: c for c in read_curves(sorted(sweep.rglob("curves.csv")))}
    sphinx = curves["sphinx"]
    assert sphinx.images == 2 and list(sphinx.steps) == STEPS
    np.testing.assert_allclose(sphinx.mean["psnr"], [slow_but_better(s) for s in STEPS])
    np.testing.assert_allclose(sphinx.std["psnr"], np.sqrt(0.5))  # offsets -0.5 and +0.5
    assert np.isnan(sphinx.mean["lpips"]).all()
    assert sphinx.at(100) == pytest.approx(30)


def test_the_crossing_is_found_where_the_slow_method_overtakes(sweep):
    curves = {c.method: c for c in read_curves(sorted(sweep.rglob("curves.csv")))}
    ((step, leader),) = crossings(curves["sphinx"], curves["wplus"])
    assert leader == "sphinx"
    # slow == fast where 16 log1p(s) / log1p(100) = 10, i.e. s = 101^(10/16) - 1 ≈ 17.0
    assert step == pytest.approx(101 ** (10 / 16) - 1, rel=0.1)


def test_the_report_writes_curves_when_runs_recorded_them(sweep):
    report = build_report([sweep])
    text = report.curves_markdown.read_text()
    assert "| sphinx | 2 |" in text and "| wplus | 2 |" in text
    assert "sphinx vs wplus: ≈17 steps (sphinx ahead after)" in text or "sphinx vs wplus: ≈18 steps" in text
    assert "100: sphinx (30.00 dB)" in text and "10: wplus" in text
    assert report.curves_png.stat().st_size > 10_000


def test_no_curves_no_curve_files(tmp_path):
    write_run(tmp_path / "run", [result_row("a", "sphinx", "none", psnr=20.0)])
    report = build_report([tmp_path])
    assert report.curves_markdown is None and not (tmp_path / "curves.md").exists()


def test_a_resumed_image_counts_once_and_a_truncated_last_line_is_skipped(sweep):
    path = sweep / "0_slow" / "curves.csv"
    text = path.read_text()
    path.write_text(text + text.splitlines()[1] + "\n" + "a,sphinx,none,demo,1")  # a repeat and a cut line
    curves = {c.method: c for c in read_curves([path])}
    assert curves["sphinx"].images == 2


def test_the_step_a_curve_first_reaches_a_value_is_interpolated_in_log_steps_or_none():
    steps = np.array([0, 9, 99, 999])
    curve = MethodCurve("m", "none", 2, steps, steps * 0.1, {"psnr": np.array([10.0, 20.0, 30.0, 25.0])}, {})
    assert first_reaching(curve, 30.0) == pytest.approx(99)
    assert first_reaching(curve, 25.0) == pytest.approx(np.expm1((np.log(10) + np.log(100)) / 2))  # halfway: 31.6
    assert first_reaching(curve, 5.0) == 0  # from the start
    assert first_reaching(curve, 31.0) is None  # never, though the last point is below the best
