"""`python -m sphinx.run` end to end: outputs, batching, DDP, resume, bad input, W&B, sweeps."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import TIMEOUT, disk_full_past, read_rows, run_in_process, sphinx_run, without_time
from sphinx.data import image_id_from_text
from sphinx.errors import OutputError
from sphinx.generators import load_generator
from sphinx.inversion import load_state, render_state
from sphinx.report import main as report_main


@pytest.fixture
def tiny(fixtures_root) -> list[str]:
    """A tiny generator from the reference fixtures: fast, and runs without the LPIPS weights."""
    return ["generator=custom", f"generator.source={fixtures_root / 'rosinality' / 'tiny_g32.pt'}", "logger=none"]


@pytest.mark.slow  # a subprocess of the entry point: ~10 s of CPU to import alone
def test_the_readme_main_command_runs_offline_on_the_demo_prior_with_reduced_steps(tmp_path):
    run_dir = tmp_path / "main"
    result = sphinx_run(
        "+experiment=ood_faces",
        "method.steps=30",
        "data.limit=3",
        "logger=none",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    rows = read_rows(run_dir)
    assert [r["image"] for r in rows] == ["astronaut", "chelsea", "coffee"]
    # An explicit step count runs as given, whatever the experiment's steps_scale.
    assert all(r["status"] == "ok" and r["generator"] == "demo" and r["steps"] == "30" for r in rows)
    assert "sphinx_warm / none: 3 ok, 0 failed; 30 steps;" in result.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["experiment"] == "ood_faces" and summary["steps"] == {"steps": 30}
    # Its output is a pipe, not a terminal: a line per quarter of each batch's steps, no redrawn bar.
    progress = [line for line in result.stderr.splitlines() if line.startswith(("steps:", "images:"))]
    assert 2 <= len(progress) <= 5 * 1 + 1 and "\r" not in result.stderr
    # The LPIPS weights are missing offline: said in one line.
    assert len([line for line in result.stdout.splitlines() if "LPIPS" in line]) == 1


def test_a_run_writes_every_output_and_its_states_re_render(tiny, tmp_path, fixtures_root, capfd):
    run_dir = tmp_path / "run"
    run_in_process(
        *tiny, "data.limit=3", "batch_size=2", "steps_scale=0.004", "trainer.enable_progress_bar=false", run_dir=run_dir
    )
    assert not [line for line in capfd.readouterr().err.splitlines() if line.startswith(("steps:", "images:"))]
    rows = read_rows(run_dir)
    assert [r["image"] for r in rows] == ["astronaut", "chelsea", "coffee"]
    assert list(rows[0]) == [
        "image",
        "method",
        "degradation",
        "generator",
        "psnr",
        "ssim",
        "lpips",
        "vicinity_spread",
        "steps",
        "seconds",
        "status",
    ]
    assert all(r["status"] == "ok" and float(r["psnr"]) > 5 and r["vicinity_spread"] for r in rows)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["count"] == 3 and summary["ok"] == 3 and summary["method"] == "sphinx"
    assert summary["metrics"]["psnr"]["mean"] == pytest.approx(np.mean([float(r["psnr"]) for r in rows]), abs=1e-3)
    assert summary["config"]["batch_size"] == 2 and summary["steps"] == {"steps": 20}
    # target | reconstruction | error (no observation column without a degradation), 256 px tiles
    width, height = Image.open(run_dir / "comparison.png").size
    assert width == 3 * 256 + 4 * 4 and height > 3 * 256
    assert Image.open(run_dir / "comparison_small.png").size[0] < width
    with open(run_dir / "curves.csv", newline="") as stream:
        curve_rows = list(csv.DictReader(stream))
    chelsea = [r for r in curve_rows if r["image"] == "chelsea"]
    assert chelsea[0]["step"] == "0" and chelsea[-1]["step"] == "20"
    assert float(chelsea[-1]["psnr"]) == pytest.approx(float(rows[1]["psnr"]), abs=1e-4)
    assert (run_dir / "failures.csv").read_text().strip() == "image,reason"
    generator = load_generator(fixtures_root / "rosinality" / "tiny_g32.pt")
    folder = run_dir / "images" / "chelsea"
    rerendered = render_state(generator, load_state(folder / "state.pt"))[0]
    saved = torch.from_numpy(np.array(Image.open(folder / "reconstruction.png"))).permute(2, 0, 1) / 127.5 - 1
    assert (rerendered - saved).abs().max() <= 1.5 / 127.5  # 8-bit PNG quantization


@pytest.mark.slow
def test_batch_1_and_batch_3_give_equal_results(tiny, tmp_path):
    for batch in (1, 3):
        run_in_process(*tiny, "data.limit=3", f"batch_size={batch}", "steps_scale=0.004", run_dir=tmp_path / str(batch))
    one, three = read_rows(tmp_path / "1"), read_rows(tmp_path / "3")
    for column in ("image", "psnr", "ssim", "vicinity_spread"):
        assert [r[column] for r in one] == [r[column] for r in three]


@pytest.mark.slow
def test_two_process_ddp_counts_every_image_once_with_the_single_process_psnr(tiny, tmp_path):
    common = [*tiny, "data.limit=3", "batch_size=2", "steps_scale=0.004", "trainer.accelerator=cpu"]
    sphinx_run(*common, f"hydra.run.dir={tmp_path / 'single'}", cwd=tmp_path)
    sphinx_run(*common, "trainer.devices=2", "trainer.strategy=ddp", f"hydra.run.dir={tmp_path / 'ddp'}", cwd=tmp_path)
    single, ddp = read_rows(tmp_path / "single"), read_rows(tmp_path / "ddp")
    assert len(ddp) == 3 and sorted(r["image"] for r in ddp) == ["astronaut", "chelsea", "coffee"]
    for a, b in zip(single, ddp):
        assert a["image"] == b["image"] and abs(float(a["psnr"]) - float(b["psnr"])) <= 0.01


@pytest.mark.slow
def test_a_run_killed_mid_way_resumes_to_the_uninterrupted_results(tiny, tmp_path):
    common = [*tiny, "data.limit=3", "batch_size=1", "steps_scale=0.02"]
    run_in_process(*common, run_dir=tmp_path / "whole")
    run_dir = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "sphinx.run", *common, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + TIMEOUT
    while not list(run_dir.glob("images/*/record.json")) and time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(list(run_dir.glob("images/*/record.json")))
    assert 1 <= done_before < 3 and not (run_dir / "results.csv").exists()
    sphinx_run(*common, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert without_time(read_rows(run_dir)) == without_time(read_rows(tmp_path / "whole"))


def test_a_folder_with_a_corrupt_and_a_grayscale_file_finishes_the_good_ones(tiny, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "broken.png").write_bytes(os.urandom(500))
    ramp = (np.linspace(0, 65535, 48 * 80).reshape(48, 80)).astype(np.uint16)
    Image.fromarray(ramp).save(folder / "gray16.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 4), dtype=np.uint8), "RGBA").save(
        folder / "rgba.png"
    )
    run_dir = tmp_path / "run"
    run_in_process(*tiny, "data=folder", f"data.path={folder}", "steps_scale=0.002", run_dir=run_dir)
    rows = {r["image"]: r for r in read_rows(run_dir)}
    assert rows["broken.png"]["status"] == "failed" and rows["broken.png"]["psnr"] == ""
    assert rows["gray16.png"]["status"] == "ok" and rows["rgba.png"]["status"] == "ok"
    with open(run_dir / "failures.csv", newline="") as stream:
        failures = list(csv.DictReader(stream))
    assert [f["image"] for f in failures] == ["broken.png"] and "cannot read image" in failures[0]["reason"]


def test_files_with_any_bytes_in_their_names_are_inverted_tabled_pictured_resumed_and_reported(tiny, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    # 0xE9 alone (a Latin-1 "café") is not UTF-8: os.listdir gives it as the lone surrogate \udce9
    names = ["a\nb.png", "c\rd.png", "caf\udce9.png", "ok.png"]
    for index, name in enumerate(names):
        pixels = np.random.default_rng(index).integers(0, 255, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name)
    (folder / "bro\udcffken.png").write_bytes(b"not an image")
    run_dir = tmp_path / "run"
    # one batch: the odd names share it with the plain one
    common = [*tiny, "data=folder", f"data.path={folder}", "batch_size=8", "steps_scale=0.002"]
    run_in_process(*common, run_dir=run_dir)
    results = (run_dir / "results.csv").read_bytes().decode("utf-8")  # strict UTF-8
    assert len(results.splitlines()) == 1 + 5  # one line per image, whatever its name holds
    rows = {image_id_from_text(row["image"]): row for row in read_rows(run_dir)}
    assert sorted(rows) == sorted([*names, "bro\udcffken.png"])
    assert [name for name in names if rows[name]["status"] == "ok" and float(rows[name]["psnr"]) > 5] == names
    assert rows["bro\udcffken.png"]["status"] == "failed"
    (failure,) = read_rows(run_dir, "failures.csv")
    assert failure["image"] == "bro\\xffken.png" and "bro\\xffken.png: cannot read image" in failure["reason"]
    assert (run_dir / "comparison.png").is_file()
    records = {path: path.read_bytes() for path in run_dir.glob("images/*/record.json")}
    assert len(records) == 5

    run_in_process(*common, run_dir=run_dir)  # a resume finds every image done, by the same ids
    assert {path: path.read_bytes() for path in run_dir.glob("images/*/record.json")} == records
    assert (run_dir / "results.csv").read_bytes().decode("utf-8") == results
    assert report_main([str(run_dir), "--out", str(tmp_path / "report")]) == 0
    assert "| sphinx | 4 ok, 1 failed |" in (tmp_path / "report" / "report.md").read_text()


@pytest.mark.slow  # a subprocess of the entry point: ~10 s of CPU to import alone
@pytest.mark.parametrize(
    "override, message",
    [("data.path={tmp}/nowhere", "nowhere"), ("generator.source={tmp}/missing.pt", "missing.pt: no such file")],
)
def test_bad_input_fails_before_any_compute_with_one_line(tiny, tmp_path, override, message):
    args = [a for a in tiny if not (override.startswith("generator") and a.startswith("generator.source"))]
    if override.startswith("data"):
        args.append("data=folder")
    run_dir = tmp_path / "run"
    result = sphinx_run(*args, override.format(tmp=tmp_path), f"hydra.run.dir={run_dir}", cwd=tmp_path, check=False)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0]
    assert not (run_dir / "images").exists()


@pytest.mark.slow  # a subprocess of the entry point: ~10 s of CPU to import alone
def test_an_unknown_config_key_gets_hydras_error_and_a_hint(tmp_path):
    result = sphinx_run("methd=w", cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert "methd" in result.stderr and "+methd" in result.stderr  # Hydra's hint to append a key


@pytest.mark.slow  # a subprocess of the entry point: ~10 s of CPU to import alone
def test_help_lists_the_config_groups(tmp_path):
    result = sphinx_run("--help", cwd=tmp_path)
    for group in ("generator:", "method:", "degradation:", "data:", "trainer:", "logger:"):
        assert group in result.stdout


@pytest.mark.slow
def test_an_offline_wandb_run_holds_the_panels_and_a_numeric_results_table(tiny, tmp_path):
    args = [a for a in tiny if a != "logger=none"]
    run_dir = tmp_path / "run"
    sphinx_run(
        *args,
        "logger=wandb",
        "logger.mode=offline",
        "data.limit=2",
        "steps_scale=0.004",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    (offline_run,) = list((run_dir / "wandb").glob("offline-run-*"))
    media = offline_run / "files" / "media"
    (panel,) = list(media.glob("images/panels_*.png"))
    width, height = Image.open(panel).size  # the labelled comparison: 3 columns of 128 px tiles
    assert width == 3 * 128 + 4 * 4 and height > 2 * 128
    (table,) = list(media.glob("table/results_*.table.json"))
    content = json.loads(table.read_text())
    assert content["columns"][:2] == ["image", "method"] and len(content["data"]) == 2
    first = dict(zip(content["columns"], content["data"][0]))  # numbers, not their text
    assert isinstance(first["psnr"], float) and isinstance(first["steps"], int) and isinstance(first["image"], str)


@pytest.mark.slow
def test_a_two_by_two_multirun_reports_a_four_cell_table(tiny, tmp_path):
    sweep = tmp_path / "sweep"
    sphinx_run(
        "-m",
        *tiny,
        "method=sphinx,wplus",
        "degradation=none,denoise",
        "data.limit=2",
        "steps_scale=0.004",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert len(list(sweep.glob("*/results.csv"))) == 4
    sphinx_run(str(sweep), cwd=tmp_path, module="sphinx.report")
    with open(sweep / "report.csv", newline="") as stream:
        cells = {(r["method"], r["degradation"]) for r in csv.DictReader(stream)}
    assert cells == {("sphinx", "none"), ("sphinx", "denoise"), ("wplus", "none"), ("wplus", "denoise")}
    assert "SPHInX against the best baseline" in (sweep / "report.md").read_text()


@pytest.mark.slow  # a subprocess of the entry point: ~10 s of CPU to import alone
def test_an_unset_data_path_is_one_line_printed_once_without_a_traceback(tiny, tmp_path):
    run_dir = tmp_path / "run"
    result = sphinx_run(*tiny, "data=folder", f"hydra.run.dir={run_dir}", cwd=tmp_path, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("data.path is not set") == 1, result.stderr


@pytest.mark.slow  # subprocesses of the entry points: seconds of CPU to import each
@pytest.mark.parametrize(
    "module, key",
    [
        ("sphinx.run", "hydra.run.dir"),
        ("sphinx.edit", "hydra.run.dir"),
        ("sphinx.train", "hydra.run.dir"),
        ("sphinx.run", "hydra.sweep.dir"),
    ],
)
def test_a_run_dir_that_cannot_be_written_is_one_line_before_hydra_writes_there(module, key, tmp_path):
    (tmp_path / "taken").write_text("a file where the run dir's folder should be")
    folder = tmp_path / "taken" / "run"
    sweep = ["-m"] if key == "hydra.sweep.dir" else []
    result = sphinx_run(*sweep, f"{key}={folder}", cwd=tmp_path, check=False, module=module)
    assert result.returncode == 2 and result.stderr.splitlines() == [
        f"error: {folder}: cannot write there (Not a directory); choose a writable folder with {key}=<folder>"
    ]


@pytest.mark.slow  # subprocesses of the entry points
@pytest.mark.parametrize(
    "module, overrides, said",
    [
        ("sphinx.run", ["+experiment=ood_faces", "method.bottleneck=1000000000"], "method.bottleneck=1000000000 is"),
        ("sphinx.edit", ["+experiment=edit_rotate", "edit.frame_ms=abc"], "edit.frame_ms must be an integer"),
        ("sphinx.train", ["seed=abc"], "seed must be an integer, got 'abc'"),
        ("sphinx.train", ["gan.lr=inf"], "gan.lr must be a finite number > 0, got inf"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith("sphinx.") else None,
)
def test_a_bad_option_is_one_line_with_exit_status_2_and_no_traceback(module, overrides, said, tmp_path):
    result = sphinx_run(*overrides, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, check=False, module=module)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(errors) == 1 and errors[0].startswith(f"error: {said}"), result.stderr[-3000:]


# What Lightning and torch printed on every run, that a sphinx user cannot act on; what Lightning's
# CSV logger printed on every resume, that suggested lost data; an empty download bar.
NOISE = ("litlogger", "LeafSpec", "will be deleted", "Warning:", "vgg16-397923af.pth: ")


@pytest.mark.slow  # subprocesses of the entry point: ~10 s of CPU to import each
def test_a_run_and_its_resume_print_one_lpips_line_that_works_as_typed_and_no_third_party_noise(
    fixtures_root, tmp_path, monkeypatch
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no LPIPS weights, and none fetched
    monkeypatch.setenv("SPHINX_OFFLINE", "1")
    tiny = [
        "generator=custom",
        f"generator.source={fixtures_root / 'rosinality' / 'tiny_g32.pt'}",
        "steps_scale=0.0004",
    ]
    run_dir = tmp_path / "run"
    first = sphinx_run(*tiny, "data.limit=1", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    earlier_metrics = (run_dir / "csv" / "metrics.csv").read_text()
    resumed = sphinx_run(*tiny, "data.limit=2", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    for result in (first, resumed):
        output = result.stdout + result.stderr
        assert not [noise for noise in NOISE if noise in output], output[-3000:]
        (lpips,) = [line for line in output.splitlines() if "LPIPS" in line]
        assert "lpips.backbone_path=<file>" in lpips and "lpips.net=none to go without it" in lpips
    # the resumed run's CSV logger kept the first run's curves instead of deleting them
    assert (run_dir / "csv" / "metrics.1.csv").read_text() == earlier_metrics
    assert "test/psnr" in (run_dir / "csv" / "metrics.csv").read_text()

    # the advice as typed: a run without LPIPS, said in one line that is no warning
    quiet = sphinx_run(*tiny, "data.limit=1", "lpips.net=none", f"hydra.run.dir={tmp_path / 'quiet'}", cwd=tmp_path)
    (lpips,) = [line for line in (quiet.stdout + quiet.stderr).splitlines() if "LPIPS" in line]
    assert "[INFO] - LPIPS off (lpips.net=none)" in lpips
    assert read_rows(tmp_path / "quiet")[0]["lpips"] == ""


def test_a_full_disk_mid_run_is_one_line_and_a_rerun_goes_on_from_the_images_kept(tiny, tmp_path):
    run_dir, job = tmp_path / "run", [*tiny, "data.limit=2", "batch_size=1", "steps_scale=0.0004"]
    with disk_full_past(100_000), pytest.raises(OutputError) as stopped:  # a state.pt has 670 kB
        run_in_process(*job, run_dir=run_dir)
    message = str(stopped.value)
    assert message.startswith(f"{run_dir / 'images' / 'astronaut' / 'state.pt'}: cannot write (File too large)")
    assert message.endswith(f"rerun the same command with hydra.run.dir={run_dir} to go on") and "\n" not in message
    run_in_process(*job, run_dir=run_dir)
    assert [(r["image"], r["status"]) for r in read_rows(run_dir)] == [("astronaut", "ok"), ("chelsea", "ok")]


@pytest.mark.slow  # a subprocess of the entry point: ~10 s of CPU to import alone
def test_an_unwritable_output_folder_is_one_line_naming_the_file(tiny, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "images").write_text("a file where the images folder belongs")
    result = sphinx_run(
        *tiny, "data.limit=1", "steps_scale=0.0004", f"hydra.run.dir={run_dir}", cwd=tmp_path, check=False
    )
    # a progress bar may share the line, ended by a carriage return
    errors = [line.split("\r")[-1] for line in result.stderr.splitlines() if "error: " in line]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(errors) == 1 and "cannot write" in errors[0] and str(run_dir / "images") in errors[0]
