"""sphinx.report: a sweep's per-image results become a methods x degradations report."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from sphinx.data import image_id_from_text
from sphinx.report import RESULTS_COLUMNS, ReportError, build_report, main
from sphinx.rundir.writer import OutputWriter

# Hand-picked per-image values of a 2 x 2 sweep, three images each.
# sphinx/none PSNR 30, 31, 35: mean 32, squared deviations 4 + 1 + 9 = 14, sample std sqrt(14 / 2).
SWEEP = {
    ("sphinx", "none"): {"psnr": [30, 31, 35], "ssim": [0.8, 0.9, 0.7], "lpips": [0.1, 0.2, 0.3]},
    ("sphinx", "denoise"): {"psnr": [26, 27, 28], "ssim": [0.6, 0.6, 0.6], "lpips": [0.3, 0.3, 0.3]},
    ("wplus", "none"): {"psnr": [28, 29, 30], "ssim": [0.7, 0.8, 0.9], "lpips": [0.2, 0.2, 0.5]},
    ("wplus", "denoise"): {"psnr": [25, 25, 25], "ssim": [0.5, 0.6, 0.7], "lpips": [0.4, 0.5, 0.6]},
}
EXPECTED = {  # (mean, sample std) worked out by hand from SWEEP
    ("sphinx", "none"): {"psnr": (32.0, math.sqrt(7.0)), "ssim": (0.8, 0.1), "lpips": (0.2, 0.1)},
    ("sphinx", "denoise"): {"psnr": (27.0, 1.0), "ssim": (0.6, 0.0), "lpips": (0.3, 0.0)},
    ("wplus", "none"): {"psnr": (29.0, 1.0), "ssim": (0.8, 0.1), "lpips": (0.3, math.sqrt(0.03))},
    ("wplus", "denoise"): {"psnr": (25.0, 0.0), "ssim": (0.6, 0.1), "lpips": (0.5, 0.1)},
}


def result_row(
    image, method, degradation, *, psnr=None, ssim=None, lpips=None, status="ok", generator="demo", vicinity_spread=None
) -> dict:
    def cell(value):
        return "" if value is None else repr(value)

    return {
        "image": image,
        "method": method,
        "degradation": degradation,
        "generator": generator,
        "psnr": cell(psnr),
        "ssim": cell(ssim),
        "lpips": cell(lpips),
        "vicinity_spread": cell(vicinity_spread),
        "steps": "100",
        "seconds": "1.5",
        "status": status,
    }


def write_run(
    run_dir: Path,
    rows: list[dict],
    *,
    summary: bool = True,
    data: str = "samples",
    experiment: str | None = "restoration",
    mtime: float | None = None,
) -> Path:
    """A run dir as the runner leaves it: results.csv, .hydra/, and summary.json once finished."""
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    path = run_dir / "results.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=RESULTS_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    if summary:
        first = rows[0]
        (run_dir / "summary.json").write_text(
            json.dumps(
                {
                    "experiment": experiment,
                    "method": first["method"],
                    "degradation": first["degradation"],
                    "generator": first["generator"],
                    "data": data,
                    "count": len(rows),
                    "ok": len(rows),
                    "failed": 0,
                    "metrics": {},
                    "config": {},
                }
            )
        )
    return path


def sweep_rows(method: str, degradation: str) -> list[dict]:
    values = SWEEP[(method, degradation)]
    return [
        result_row(
            f"img{i}.png", method, degradation, psnr=values["psnr"][i], ssim=values["ssim"][i], lpips=values["lpips"][i]
        )
        for i in range(3)
    ]


@pytest.fixture
def multirun(tmp_path: Path) -> Path:
    """A Hydra multirun folder of a 2 x 2 sweep: jobs 0..3, one per (method, degradation)."""
    root = tmp_path / "multirun"
    for job, key in enumerate(SWEEP):
        write_run(root / str(job), sweep_rows(*key))
    return root


def test_a_2x2_multirun_gives_four_cells_with_hand_computed_means_and_sample_stds(multirun, tmp_path):
    report = build_report([multirun], out=tmp_path / "out")

    assert {(c.method, c.degradation) for c in report.cells} == set(EXPECTED)
    assert len(report.cells) == 4
    for (method, degradation), metrics in EXPECTED.items():
        cell = report.cell(method, degradation)
        assert (cell.generator, cell.data, cell.ok, cell.failed) == ("demo", "samples", 3, 0)
        for metric, (mean, std) in metrics.items():
            stat = cell.statistic(metric)
            assert stat.n == 3
            assert stat.mean == pytest.approx(mean), (method, degradation, metric)
            assert stat.std == pytest.approx(std), (method, degradation, metric)


def test_report_md_csv_and_png_are_written_with_the_numbers(multirun):
    report = build_report([multirun])  # --out defaults to the first dir

    assert report.markdown == multirun / "report.md"
    markdown = report.markdown.read_text()
    title = "# restoration: sphinx, wplus x none, denoise on samples, generator demo\n"
    assert markdown.startswith(title)
    assert "sample standard deviation" in markdown
    psnr_table = markdown.split("## PSNR (dB), higher is better")[1].split("##")[0]
    assert "| method | none | denoise |" in psnr_table
    assert "| sphinx | **32.00 ± 2.65** | **27.00 ± 1.00** |" in psnr_table
    assert "| wplus | 29.00 ± 1.00 | 25.00 ± 0.00 |" in psnr_table
    assert "| wplus | 0.3000 ± 0.1732 | 0.5000 ± 0.1000 |" in markdown  # LPIPS table

    with report.csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["generator", "data", "method", "degradation", "metric", "mean", "std", "n"]
    assert len(rows) == 4 * 3  # one row per cell and metric
    by_key = {(r["method"], r["degradation"], r["metric"]): r for r in rows}
    psnr = by_key[("sphinx", "none", "psnr")]
    assert (psnr["generator"], psnr["data"], psnr["n"]) == ("demo", "samples", "3")
    assert float(psnr["mean"]) == pytest.approx(32.0)
    assert float(psnr["std"]) == pytest.approx(math.sqrt(7.0))

    assert report.png.stat().st_size > 10_000
    with Image.open(report.png) as image:
        image.load()
        assert image.format == "PNG"
        assert image.width > 800 and image.height > 300


def test_sphinx_is_set_against_the_best_baseline_per_metric_lpips_lower_is_better(multirun, tmp_path):
    # A third method: the best baseline on PSNR (30.5 > wplus 29) but the worst on LPIPS.
    write_run(
        multirun / "4", [result_row(f"img{i}.png", "w", "none", psnr=30.5, ssim=0.5, lpips=0.9) for i in range(3)]
    )
    report = build_report([multirun], out=tmp_path / "out")

    by_key = {(c.degradation, c.metric): c for c in report.comparisons}
    psnr = by_key[("none", "psnr")]
    assert (psnr.sphinx_method, psnr.baseline_method) == ("sphinx", "w")
    assert psnr.difference == pytest.approx(32.0 - 30.5)
    assert psnr.sphinx_better
    lpips = by_key[("none", "lpips")]
    assert lpips.baseline_method == "wplus"  # 0.3 beats w's 0.9: lower is better
    assert lpips.difference == pytest.approx(0.2 - 0.3)
    assert lpips.sphinx_better
    denoise = by_key[("denoise", "psnr")]  # w did not run denoise
    assert (denoise.baseline_method, denoise.difference) == ("wplus", pytest.approx(2.0))

    markdown = report.markdown.read_text()
    assert "| none | PSNR (dB) | sphinx 32.00 | w 30.50 | +1.50 | SPHInX |" in markdown
    assert "| none | LPIPS | sphinx 0.2000 | wplus 0.3000 | -0.1000 | SPHInX |" in markdown
    assert "| denoise | PSNR (dB) | sphinx 27.00 | wplus 25.00 | +2.00 | SPHInX |" in markdown


def test_failed_images_are_counted_but_left_out_of_the_means(tmp_path):
    write_run(
        tmp_path / "run",
        [
            result_row("a.png", "sphinx", "none", psnr=20.0, ssim=0.5, lpips=0.2),
            result_row("b.png", "sphinx", "none", psnr=22.0, ssim=0.7, lpips=0.4),
            result_row("corrupt.png", "sphinx", "none", status="failed"),
        ],
    )
    report = build_report([tmp_path / "run"])

    cell = report.cell("sphinx", "none")
    assert (cell.ok, cell.failed) == (2, 1)
    assert (cell.psnr.mean, cell.psnr.n) == (pytest.approx(21.0), 2)
    assert "| sphinx | 2 ok, 1 failed |" in report.markdown.read_text()


def test_empty_lpips_cells_are_left_out_and_a_single_image_has_std_zero(tmp_path):
    write_run(
        tmp_path / "run",
        [
            # LPIPS unavailable for the whole W+ run, and for one of the two SPHInX images
            result_row("a.png", "wplus", "none", psnr=20.0, ssim=0.5),
            result_row("a.png", "sphinx", "none", psnr=21.0, ssim=0.6, lpips=0.25),
            result_row("b.png", "sphinx", "none", psnr=23.0, ssim=0.6),
        ],
    )
    report = build_report([tmp_path / "run"])

    wplus, sphinx = report.cell("wplus", "none"), report.cell("sphinx", "none")
    assert (wplus.lpips.mean, wplus.lpips.std, wplus.lpips.n) == (None, None, 0)
    assert (sphinx.lpips.mean, sphinx.lpips.std, sphinx.lpips.n) == (0.25, 0.0, 1)
    assert sphinx.psnr.n == 2
    lpips_table = report.markdown.read_text().split("## LPIPS")[1].split("##")[0]
    assert "| sphinx | 0.2500 ± 0.0000 (n=1) |" in lpips_table
    assert "| wplus | — |" in lpips_table
    # no baseline has an LPIPS value, so there is nothing to set SPHInX against
    assert [c.metric for c in report.comparisons] == ["psnr", "ssim"]


def test_an_image_seen_twice_is_counted_once_keeping_the_newest_row_with_a_warning(tmp_path):
    old = write_run(
        tmp_path / "first",
        [result_row("a.png", "sphinx", "none", psnr=10.0), result_row("b.png", "sphinx", "none", status="failed")],
        mtime=1_000_000,
    )
    write_run(
        tmp_path / "resumed",
        [  # the resumed run redid b.png, and repeats a.png
            result_row("a.png", "sphinx", "none", psnr=12.0),
            result_row("b.png", "sphinx", "none", psnr=14.0),
        ],
        mtime=2_000_000,
    )

    report = build_report([tmp_path, tmp_path / "first"])  # a dir also reached twice

    cell = report.cell("sphinx", "none")
    assert (cell.ok, cell.failed) == (2, 0)
    assert cell.psnr.mean == pytest.approx(13.0)
    assert report.sources[0] == old  # oldest first
    assert len(report.sources) == 2
    assert any("reached twice" in w for w in report.warnings)
    assert any("2 image(s) appear more than once" in w and "a.png, b.png" in w for w in report.warnings)
    assert "appear more than once" in report.markdown.read_text()


def test_an_interrupted_run_without_summary_is_included_under_its_siblings_data(multirun, tmp_path):
    results = write_run(multirun / "4", [result_row("img0.png", "w", "none", psnr=18.0)], summary=False)
    with results.open("a") as handle:
        handle.write("img1.png,w,none,demo,19.")  # killed while writing its second row
    report = build_report([multirun], out=tmp_path / "out")

    cell = report.cell("w", "none")
    assert (cell.ok, cell.psnr.mean, cell.generator, cell.data) == (1, 18.0, "demo", "samples")
    assert len(report.cells) == 5
    assert any("line 3: truncated last row" in w for w in report.warnings)


def test_an_interrupted_run_alone_is_reported_with_an_unknown_data_set(tmp_path):
    write_run(tmp_path / "run", [result_row("a.png", "sphinx", "none", psnr=18.0)], summary=False)
    report = build_report([tmp_path / "run"])

    assert report.title == "sphinx report: sphinx x none on unknown, generator demo"
    assert report.cell("sphinx", "none").data == "unknown"


def test_a_summary_nested_too_deeply_to_parse_is_noted_and_its_run_read_from_results_csv(tmp_path):
    write_run(tmp_path / "run", [result_row("a.png", "sphinx", "none", psnr=18.0)])
    (tmp_path / "run" / "summary.json").write_text("[" * 100_000 + "]" * 100_000)
    report = build_report([tmp_path / "run"])

    assert report.cell("sphinx", "none").psnr.mean == 18.0
    assert any("summary.json is JSON nested too deeply" in w for w in report.warnings), report.warnings


def test_two_generators_get_a_section_each_and_are_named_in_the_title(multirun, tmp_path):
    write_run(
        tmp_path / "ffhq", [result_row("img0.png", "sphinx", "none", psnr=40.0, generator="ffhq256")], data="faces"
    )
    report = build_report([multirun, tmp_path / "ffhq"], out=tmp_path / "out")

    assert report.title == (
        "restoration: sphinx, wplus x none, denoise on samples, generator demo; on faces, generator ffhq256"
    )
    assert report.cell("sphinx", "none", generator="ffhq256").psnr.mean == 40.0
    assert report.cell("sphinx", "none", generator="demo").psnr.mean == pytest.approx(32.0)
    markdown = report.markdown.read_text()
    assert "## Generator demo, data samples" in markdown
    assert "## Generator ffhq256, data faces" in markdown


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert main([str(missing)]) == 2
    assert capsys.readouterr().err == f"sphinx.report: error: no such directory: {missing}\n"

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"no results.csv under {empty}; point it at a run or multirun directory" in err

    bad = tmp_path / "bad" / "results.csv"
    bad.parent.mkdir()
    bad.write_text("image,method,degradation,psnr,status\na.png,sphinx,none,20,ok\n")
    assert main([str(bad.parent)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{bad} has a wrong header: missing column(s) generator, ssim, lpips, " in err

    assert main([]) == 2  # argparse usage error
    assert "usage:" in capsys.readouterr().err


def test_a_malformed_cell_is_refused_with_its_file_and_line(tmp_path):
    write_run(
        tmp_path / "run",
        [result_row("a.png", "sphinx", "none", psnr=20.0), {**result_row("b.png", "sphinx", "none"), "psnr": "twenty"}],
    )
    with pytest.raises(ReportError, match=r"results\.csv, line 3: psnr 'twenty' is not a number"):
        build_report([tmp_path / "run"])


def test_python_dash_m_sphinx_report_writes_the_report(multirun, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "sphinx.report", str(multirun), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "| sphinx | **32.00 ± 2.65** | **27.00 ± 1.00** |" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["report.csv", "report.md", "report.png"]


def test_the_report_lists_methods_in_the_registry_order_and_reads_csv_without_torch():
    import subprocess
    import sys

    from sphinx.inversion.methods import METHODS
    from sphinx.report.names import METHOD_ORDER

    assert METHOD_ORDER == tuple(METHODS)
    code = "import sys, sphinx.report; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


# --- edit run dirs ---------------------------------------------------------------------------

EDIT_HEADER = (
    "image,edit,method,generator,transform,inversion,factors,alphas,psnr@0,psnr_heldout,psnr_identity,"
    "achieved@22.5,achieved@30,achieved_error,intensity_change,control_achieved@22.5,control_achieved@30,"
    "control_achieved_error,control_psnr_heldout,flags,strip,steps,seconds,status,message"
)


def run_cli(*args: str) -> tuple[str, str, int]:
    """``python -m sphinx.report`` in process: its stdout, stderr and exit status."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return out.getvalue(), err.getvalue(), code


def write_edit_run(folder: Path, rows: list[str]) -> Path:
    folder.mkdir(parents=True)
    (folder / "results.csv").write_text(EDIT_HEADER + "\n" + "\n".join(rows) + "\n")
    return folder


def test_the_report_reads_edit_runs_and_says_whether_the_direction_beat_its_control(tmp_path):
    learned = write_edit_run(
        tmp_path / "kept",
        [
            "astronaut,attribute,sphinx_warm,demo,rotate,kept,0 22.5 45,0 2 4,23.5,18.1,10.4,21.4,32.4,1.6,0.008,0.7,0.9,"
            "32,14.2,,s.png,500,70,ok,",
            "chelsea,attribute,sphinx_warm,demo,rotate,kept,0 22.5 45,0 2 4,24.1,21.6,17,24.1,33.3,1.1,0.002,0,0,33,"
            "16,missed@30,s.png,500,70,ok,",
        ],
    )
    # the same run with the direction frozen in both: nothing to choose between them
    frozen = write_edit_run(
        tmp_path / "frozen",
        [
            "astronaut,attribute,sphinx_warm,demo,rotate,joint,0 22.5 45,0 2 4,21,20,10,0.7,0.9,32,0.03,0.7,0.9,32,20,,s.png,"
            "500,70,ok,"
        ],
    )
    out, err, code = run_cli(str(learned), str(frozen), "--out", str(tmp_path / "report"))
    assert code == 0, err
    assert "## attribute rotate / sphinx_warm, inversion kept (demo)" in out
    assert "rotate: the learned direction beats its frozen control on 2 of 2 images" in out
    assert "1 flagged (chelsea)" in out
    assert "## attribute rotate / sphinx_warm, inversion joint (demo)" in out
    assert "rotate: no evidence that the direction was learned: it beats its frozen control on 0 of 1 images" in out
    assert "| astronaut | 0 2 4 | 23.50 | 18.10 / 10.40 | 21.4 / 0.7 | 32.4 / 0.9 | 0.008 / " in out
    table = pd.read_csv(tmp_path / "report" / "edits.csv")
    kept = table[(table["inversion"] == "kept") & (table["measure"] == "achieved_error")]
    assert kept["mean"].tolist() == [pytest.approx(1.35)] and kept["n"].tolist() == [2]
    assert (tmp_path / "report" / "edits.png").stat().st_size > 1000


def test_the_report_of_a_morph_run_gives_its_means(tmp_path):
    folder = tmp_path / "morph"
    folder.mkdir()
    (folder / "results.csv").write_text(
        "image,edit,method,generator,first,second,frames,endpoint_error,step_mean,smoothness,strip,steps,seconds,"
        "status,message\n"
        "a -> b,morph,sphinx_warm,demo,a,b,9,0,0.07,1.4,s.png,,,ok,\n"
        "b -> c,morph,sphinx_warm,demo,b,c,9,0,0.05,1.6,s.png,,,ok,\n"
    )
    out, err, code = run_cli(str(folder))
    assert code == 0, err
    assert "| endpoint_error | step_mean | smoothness |" in out and "| 0 ± 0 | 0.06 ± 0.014 | 1.5 ± 0.14 |" in out


def test_the_report_says_that_ilo_is_scored_on_its_best_image_and_the_others_on_their_last(tmp_path):
    write_run(tmp_path / "ilo", [result_row("a", "ilo", "none", psnr=30.0, ssim=0.9)])
    write_run(tmp_path / "wplus", [result_row("a", "wplus", "none", psnr=28.0, ssim=0.8)])
    text = build_report([tmp_path]).markdown.read_text()
    assert "ilo: its lowest-MSE image over all steps is scored; every other method's last image." in text
    write_run(tmp_path / "alone", [result_row("a", "wplus", "none", psnr=28.0, ssim=0.8)])
    assert "lowest-MSE" not in build_report([tmp_path / "alone"]).markdown.read_text()


# --- image ids that hold any character ---------------------------------------------------------


def test_the_report_reads_back_a_results_csv_whose_image_names_hold_any_bytes(tmp_path):
    # a newline, a carriage return, a byte that is not UTF-8 (0xE9, as os.listdir gives it), a pipe,
    # a backslash, and spaces a trimmed cell would lose
    ids = ["a\nb.png", "c\rd.png", "caf\udce9.png", "a|b.png", "back\\slash.png", " spaced .png"]
    writer = OutputWriter(tmp_path / "run", method="sphinx", degradation="none", generator="demo")
    for index, image_id in enumerate(ids):
        scores = {"psnr": 20.0 + index, "ssim": 0.5, "lpips": None, "vicinity_spread": None}
        writer.write_record(image_id, index, {**scores, "steps": 10, "seconds": 1.0, "status": "ok", "message": ""})
    writer.write_failure("bro\udcffken\n.png", len(ids), "bro\udcffken\n.png: cannot read image (broken)")
    writer.finalize(config={}, experiment="names", data="a folder")
    text = (tmp_path / "run" / "results.csv").read_bytes().decode("utf-8")  # strict UTF-8
    assert len(text.splitlines()) == 1 + len(ids) + 1  # the header, then one line per image
    with open(tmp_path / "run" / "results.csv", newline="", encoding="utf-8") as stream:
        assert [image_id_from_text(row["image"]) for row in csv.DictReader(stream)] == [*ids, "bro\udcffken\n.png"]
    failures = (tmp_path / "run" / "failures.csv").read_text(encoding="utf-8").splitlines()
    assert failures[1] == "bro\\xffken\\n.png,bro\\xffken\\n.png: cannot read image (broken)"

    out, err, code = run_cli(str(tmp_path / "run"))
    assert code == 0, err
    (cell,) = build_report([tmp_path / "run"]).cells
    assert (cell.ok, cell.failed) == (len(ids), 1)  # every id its own image
    assert cell.psnr.mean == pytest.approx(22.5)


def test_an_image_named_with_a_pipe_stays_in_its_column_of_the_edit_table(tmp_path):
    run = write_edit_run(
        tmp_path / "pipe",
        [
            "a|b.png,attribute,sphinx_warm,demo,rotate,kept,0 22.5 45,0 2 4,23.5,18.1,10.4,21.4,32.4,1.6,0.008,0.7,0.9,"
            "32,14.2,,s.png,500,70,ok,"
        ],
    )
    out, err, code = run_cli(str(run))
    assert code == 0, err
    (row,) = [line for line in out.splitlines() if line.startswith("| a")]
    assert row.startswith("| a\\|b.png | 0 2 4 | 23.50 |")
