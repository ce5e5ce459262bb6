"""`python -m sphinx.edit` end to end: the three edits, their files, resume, bad input, W&B."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import compose, read_rows, run_in_process, sphinx_run
from sphinx.build import build_edit, build_method
from sphinx.configs import config_dir
from sphinx.data import BundledSamples, image_id_from_text
from sphinx.editing import AttributeEdit
from sphinx.errors import SphinxError
from sphinx.generators import load_generator
from sphinx.inversion import invert, load_state, save_state
from sphinx.inversion.methods import method_config
from sphinx.metrics.image_quality import psnr

CONF = Path(config_dir("edit"))


def sphinx_edit(*args: str, cwd: Path, check: bool = True):
    return sphinx_run(*args, cwd=cwd, check=check, module="sphinx.edit")


@pytest.fixture
def tiny(fixtures_root) -> list[str]:
    return ["generator=custom", f"generator.source={fixtures_root / 'rosinality' / 'tiny_g32.pt'}", "logger=none"]


def one_error_line(result) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    return errors[0]


@pytest.fixture(scope="module")
def demo_generator():
    return load_generator("demo")


# --- configs --------------------------------------------------------------------------------


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONF / "experiment").glob("edit_*.yaml")))
def test_every_edit_experiment_composes_on_the_demo_prior_and_builds_its_edit(experiment, demo_generator):
    cfg = compose("edit", f"+experiment={experiment}")
    assert cfg.experiment_name == experiment and cfg.generator.source == "demo"
    assert cfg.edit.kind in ("attribute", "morph", "direction")
    edit = build_edit(cfg, demo_generator, ["astronaut", "chelsea"], build_method(cfg, batch_size=1), "none")
    assert edit.kind == cfg.edit.kind


def test_every_edit_option_composes():
    for option in sorted(p.stem for p in (CONF / "edit").glob("*.yaml")):
        assert compose("edit", f"edit={option}").edit.kind


# --- the CI command -------------------------------------------------------------------------


@pytest.mark.slow  # a subprocess of the entry point: ~10 s of CPU to import alone
def test_edit_rotate_runs_offline_on_the_demo_prior_and_writes_every_output(tmp_path):
    run_dir = tmp_path / "rotate"
    result = sphinx_edit(
        "+experiment=edit_rotate", "steps_scale=0.006", "logger=none", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert "edit attribute / sphinx_warm: 2 ok" in result.stdout  # the main job's method
    # 30 steps leave the alphas short of the hinge: said in the last line, in a column and in the log
    assert "2 ok (2 flagged), 0 failed" in result.stdout and "WARNING] - astronaut: alphas_" in result.stdout
    assert "rotate: " in result.stdout and "its frozen control on" in result.stdout  # the verdict line
    rows = read_rows(run_dir)
    # the inversion is made first, as sphinx.run makes it, and kept: the walk starts at it
    demo = load_generator("demo")
    targets, ids = BundledSamples(resolution=demo.resolution, limit=2).batch()
    inverted = invert(demo, targets, ids, method=method_config("sphinx_warm", steps=30).without_lpips())
    for row, score in zip(rows, psnr(inverted.reconstructions, targets).tolist()):
        assert row["psnr@0"] == f"{score:.6g}"
    assert [r["image"] for r in rows] == ["astronaut", "chelsea"]
    for row in rows:
        assert row["status"] == "ok" and row["transform"] == "rotate" and row["factors"] == "0 22.5 45"
        assert row["steps"] == "30" and row["alphas"].startswith("0 ")
        for column in ("psnr@0", "psnr@22.5", "psnr@45", "psnr_learned", "psnr_heldout@30", "psnr_identity@30"):
            assert float(row[column]) > 5, column
            assert float(row[f"control_{column}"]) > 5, column
        assert row["inversion"] == "kept" and row["flags"].startswith("alphas_")
        for factor in ("22.5", "45", "30"):
            assert -90 <= float(row[f"achieved@{factor}"]) <= 90 and row[f"control_achieved@{factor}"] != ""
        folder = run_dir / "images" / row["image"]
        assert len(list((folder / "frames").glob("*.png"))) == 7  # 0, midpoints, 2 learned, 1 beyond each end
        with Image.open(folder / "walk.gif") as gif:
            assert gif.n_frames == 12 and gif.size == (128, 128)  # forth and back, upscaled 2x
        assert Image.open(folder / "strip.png").size[0] == 7 * 128 + 6 * 2
        edit = AttributeEdit.of(load_state(folder / "state.pt"))
        assert edit.direction.shape == (10, 256) and edit.factors.tolist() == [0, 22.5, 45]
        assert " ".join(f"{a:.4g}" for a in edit.alphas.tolist()) == row["alphas"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["edit"] == "attribute" and summary["ok"] == 2 and "psnr_heldout" in summary["metrics"]
    assert summary["flagged"] == 2 and summary["control"]["images"] == 2
    assert (run_dir / "overview.png").is_file()
    report = subprocess.run(
        [sys.executable, "-m", "sphinx.report", str(run_dir)], capture_output=True, text=True, check=True
    )
    assert "## attribute rotate / sphinx_warm, inversion kept (demo)" in report.stdout
    assert "2 flagged (astronaut, chelsea)" in report.stdout and (run_dir / "edits.png").is_file()


# --- morph and directions, on the tiny generator ----------------------------------------------


@pytest.mark.slow  # a subprocess of the entry point: ~10 s of CPU to import alone
def test_morph_inverts_then_morphs_each_image_into_the_next_with_exact_ends(tiny, tmp_path):
    run_dir = tmp_path / "morph"
    sphinx_edit(
        *tiny,
        "edit=morph",
        "data.limit=3",
        "method.steps=10",
        "edit.frames=5",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    rows = read_rows(run_dir)
    assert [(r["first"], r["second"]) for r in rows] == [("astronaut", "chelsea"), ("chelsea", "coffee")]
    for row in rows:
        assert row["edit"] == "morph" and float(row["endpoint_error"]) <= 1e-5 and float(row["smoothness"]) >= 1
        folder = run_dir / "morphs" / f"{row['first']}__{row['second']}"
        assert len(list((folder / "frames").glob("*.png"))) == 5 and (folder / "walk.gif").is_file()


@pytest.mark.slow  # a subprocess of the entry point: ~10 s of CPU to import alone
def test_a_direction_edits_a_finished_run_and_a_rerun_resumes(tiny, tmp_path):
    inverted = tmp_path / "inverted"
    run_in_process(*tiny, "data.limit=2", "method.steps=10", run_dir=inverted)
    direction = tmp_path / "d.npy"
    np.save(direction, np.linspace(-1, 1, 64, dtype=np.float32))
    run_dir = tmp_path / "direction"
    common = [
        *tiny,
        "edit=direction",
        f"edit.source={direction}",
        "edit.strengths=[-2,0,2]",
        "edit.layers=[0,4]",
        f"edit.states_from={inverted}",
        f"hydra.run.dir={run_dir}",
    ]
    sphinx_edit(*common, "data.limit=1", cwd=tmp_path)
    first_record = (run_dir / "images" / "astronaut" / "record.json").read_text()
    result = sphinx_edit(*common, "data.limit=2", cwd=tmp_path)
    assert "resuming" in result.stderr + result.stdout
    assert (run_dir / "images" / "astronaut" / "record.json").read_text() == first_record  # not redone
    rows = read_rows(run_dir)
    assert [r["image"] for r in rows] == ["astronaut", "chelsea"]
    for row in rows:
        assert row["direction"] == "d.npy" and row["layers"] == "0:4" and float(row["change"]) > 0
        assert row["steps"] == "0"  # loaded, not inverted again
        saved = np.asarray(Image.open(run_dir / "images" / row["image"] / "frames" / "01.png"))
        original = np.asarray(Image.open(inverted / "images" / row["image"] / "reconstruction.png"))
        assert np.abs(saved.astype(int) - original.astype(int)).max() <= 1  # strength 0 re-renders the state


def test_a_morph_between_files_with_any_bytes_in_their_names_is_tabled_titled_and_resumed(tiny, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    names = ["a\nb.png", "caf\udce9.png"]  # a newline; 0xE9 alone, not UTF-8 (os.listdir: \udce9)
    for index, name in enumerate(names):
        pixels = np.random.default_rng(index).integers(0, 255, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name)
    run_dir = tmp_path / "morph"
    common = [*tiny, "edit=morph", "data=folder", f"data.path={folder}", "method.steps=4", "edit.frames=3"]
    run_in_process(*common, run_dir=run_dir, edit=True)
    results = (run_dir / "results.csv").read_bytes().decode("utf-8")  # strict UTF-8
    assert len(results.splitlines()) == 2  # the header and the one pair, on one line
    (row,) = read_rows(run_dir)
    assert [image_id_from_text(row[key]) for key in ("first", "second")] == names
    assert row["image"] == "a\\nb.png -> caf\\xe9.png" and row["status"] == "ok"
    run_in_process(*common, run_dir=run_dir, edit=True)  # a resume: the inversions are done, by the same ids
    assert (run_dir / "results.csv").read_bytes().decode("utf-8") == results


# --- bad input: one line, before any compute ---------------------------------------------------


@pytest.mark.slow  # a subprocess of the entry point: ~10 s of CPU to import alone
def test_a_state_of_another_generator_fails_before_any_compute_with_one_line(tiny, fixtures_root, tmp_path):
    other = load_generator(fixtures_root / "rosinality" / "tiny_g64.pt")
    result = invert(other, torch.zeros(1, 3, 64, 64), ["astronaut"], steps=1, lpips_weight=0.0)
    save_state(result.states[0], tmp_path / "other" / "images" / "astronaut" / "state.pt")
    run_dir = tmp_path / "run"
    line = one_error_line(
        sphinx_edit(
            *tiny,
            "edit=direction",
            "data.limit=1",
            f"edit.states_from={tmp_path / 'other'}",
            f"hydra.run.dir={run_dir}",
            cwd=tmp_path,
            check=False,
        )
    )
    assert "astronaut/state.pt: made with another generator (64 px" in line
    assert not (run_dir / "images").exists()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["edit=direction", "edit.source={tmp}/wrong.npy"], "wrong.npy: a direction must have shape [64] or [8, 64]"),
        (["edit=direction", "edit.source={tmp}/missing.pt"], "missing.pt: no such direction file"),
        (["edit.factors=[0,45,22.5]"], "factors must be strictly increasing"),
        (["edit.factors=[10,20]"], "must be rotate's identity 0"),
        (["edit=attribute_zoom", "edit.held_out=[-1]"], "zoom held-out factor -1 is out of its range [0.25, 4] x"),
        (
            ["edit.transform=translate", "edit.factors=[0,22.5]", "edit.held_out=[0.1]"],
            "translate attribute factor 22.5",
        ),
        (["edit=morph"], "a morph needs at least two images and the data has 1; raise data.limit"),
        (["edit.tolerance=0"], "edit.tolerance must be a positive number"),
        (["edit.control=maybe"], "edit.control must be true or false"),
        (["edit=direction", "edit.layers=[5,2]"], "layers must satisfy"),
        (["method=pti"], "no W+ input"),
        (["edit=direction", "edit.states_from={tmp}/nowhere"], "nowhere: edit.states_from must be a sphinx.run dir"),
        (["edit.frame_ms=abc"], "edit.frame_ms must be an integer, got 'abc'"),
        (["edit.walk_density=1.5"], "edit.walk_density must be an integer, got 1.5"),
        (["edit.walk_extend=1000000000"], "edit.walk_extend must be at most 100, got 1000000000"),
        (["edit.factors=abc"], "edit.factors must be a list of finite numbers, e.g. [0, 22.5, 45], got 'abc'"),
        (["edit.held_out=[nan]"], "edit.held_out must be a list of finite numbers"),
        (["edit=morph", "edit.frames=abc"], "edit.frames must be an integer, got 'abc'"),
        (["edit=morph", "edit.frames=1000000000"], "edit.frames must be at most 1000"),
        (["edit=direction", "edit.component=abc"], "edit.component must be an integer, got 'abc'"),
        (["edit=direction", "edit.pca_samples=abc"], "edit.pca_samples must be an integer, got 'abc'"),
        (["edit=direction", "edit.strengths=[inf]"], "edit.strengths must be a list of finite numbers"),
    ],
)
def test_bad_edit_options_are_refused_in_one_line(tiny, tmp_path, overrides, message):
    np.save(tmp_path / "wrong.npy", np.zeros((3, 7), dtype=np.float32))
    generator = load_generator(tiny[1].split("=", 1)[1])
    cfg = compose("edit", *tiny, *(o.format(tmp=tmp_path) for o in overrides))
    with pytest.raises(SphinxError) as refused:
        build_edit(cfg, generator, ["astronaut"], build_method(cfg, batch_size=cfg.batch_size), "none")
    assert message in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.slow
def test_an_offline_wandb_edit_run_logs_the_strips_and_the_gifs(tiny, tmp_path):
    run_dir = tmp_path / "run"
    sphinx_edit(
        *[a for a in tiny if a != "logger=none"],
        "logger=wandb",
        "logger.mode=offline",
        "data.limit=1",
        "method.steps=3",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    (offline_run,) = list((run_dir / "wandb").glob("offline-run-*"))
    media = offline_run / "files" / "media"
    assert list(media.glob("images/strips_*.png"))
    assert list(media.glob("videos/walks_*.gif"))


def test_rerunning_an_edit_run_dir_with_other_edit_options_is_refused_before_any_compute(tiny, tmp_path):
    common = [*tiny, "edit=direction", "data.limit=1", "method.steps=2", "method.lpips_weight=0"]
    run_in_process(*common, run_dir=tmp_path / "run", edit=True)
    record = (tmp_path / "run" / "images" / "astronaut" / "record.json").read_text()
    with pytest.raises(SphinxError, match=r"holds results of another configuration: edit.frame_ms \(250 -> 100\)"):
        run_in_process(*common, "edit.frame_ms=100", run_dir=tmp_path / "run", edit=True)
    assert (tmp_path / "run" / "images" / "astronaut" / "record.json").read_text() == record
