"""Resuming a run dir: never under another configuration, crashed batches retried, metrics whole."""

from __future__ import annotations

import csv
import json
import re
import signal
import time

import pytest
import pytorch_lightning as pl
from omegaconf import OmegaConf
from pytorch_lightning.loggers import CSVLogger

from helpers import TIMEOUT, read_rows, run_in_process, sphinx_run, start
from sphinx.data.datasets import BundledSamples
from sphinx.degradations import NoDegradation
from sphinx.errors import ConfigError, SphinxError
from sphinx.generators import load_generator
from sphinx.inversion.methods import method_config
from sphinx.lit import module as module_code
from sphinx.lit.callbacks import WriteImages
from sphinx.lit.datamodule import IDLE, InversionDataModule, ShardSampler
from sphinx.lit.module import InversionModule
from sphinx.rundir.lock import RunDirLock
from sphinx.rundir.writer import OutputWriter


@pytest.fixture(scope="module")
def generator(fixtures_root):
    return load_generator(fixtures_root / "rosinality" / "tiny_g32.pt")


def trainer_pass(generator, run_dir, *, limit: int, logger=False) -> OutputWriter:
    """One `trainer.test` over the first `limit` bundled samples, as sphinx.run does it."""
    writer = OutputWriter(run_dir, method="wplus", degradation="none", generator="tiny")
    done = writer.done_ids()
    module = InversionModule(
        generator,
        method=method_config("wplus", steps=2, lpips_weight=0.0, w_avg_samples=100),
        degradation=NoDegradation(),
        seed=0,
        lpips=None,
        progress=False,
        earlier=[r for r in writer.records() if r["image"] in done],
    )
    dataset = BundledSamples(resolution=generator.resolution, limit=limit)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=logger,
        inference_mode=False,
        callbacks=[WriteImages(writer)],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.test(module, datamodule=InversionDataModule(dataset, batch_size=1, done=done), verbose=False)
    return writer


def test_images_of_a_crashed_batch_are_retried_on_the_next_run(generator, tmp_path, monkeypatch):
    real_invert = module_code.invert

    def crash_on_chelsea(generator, images, ids, **options):
        if "chelsea" in ids:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real_invert(generator, images, ids, **options)

    monkeypatch.setattr(module_code, "invert", crash_on_chelsea)
    writer = trainer_pass(generator, tmp_path, limit=2)
    statuses = {r["image"]: r["status"] for r in writer.records()}
    assert statuses == {"astronaut": "ok", "chelsea": "failed"}
    assert writer.done_ids() == {"astronaut"}  # the crash is not counted as done
    monkeypatch.setattr(module_code, "invert", real_invert)
    writer = trainer_pass(generator, tmp_path, limit=2)
    assert {r["image"]: r["status"] for r in writer.records()} == {"astronaut": "ok", "chelsea": "ok"}


def test_metrics_logged_after_a_resume_cover_every_image(generator, tmp_path):
    trainer_pass(generator, tmp_path, limit=1)
    logger = CSVLogger(save_dir=str(tmp_path), name="csv", version="")
    writer = trainer_pass(generator, tmp_path, limit=3, logger=logger)
    logger.finalize("success")
    with open(tmp_path / "csv" / "metrics.csv", newline="") as stream:
        logged = [row for row in csv.DictReader(stream) if row.get("test/psnr")]
    psnrs = [r["psnr"] for r in writer.records()]
    assert len(psnrs) == 3
    assert float(logged[-1]["test/psnr"]) == pytest.approx(sum(psnrs) / 3, rel=1e-5)


def test_a_run_with_every_image_done_still_finishes(generator, tmp_path):
    trainer_pass(generator, tmp_path, limit=1)
    before = (tmp_path / "images" / "astronaut" / "record.json").read_text()
    trainer_pass(generator, tmp_path, limit=1)
    assert (tmp_path / "images" / "astronaut" / "record.json").read_text() == before


def test_a_rank_without_images_is_served_one_empty_batch():
    assert list(ShardSampler(1, rank=1, world_size=2)) == [IDLE]
    assert list(ShardSampler(3, rank=1, world_size=2)) == [1]


@pytest.fixture
def tiny(fixtures_root) -> list[str]:
    return ["generator=custom", f"generator.source={fixtures_root / 'rosinality' / 'tiny_g32.pt'}", "logger=none"]


@pytest.mark.slow  # a subprocess of the entry point: ~10 s of CPU to import alone
def test_rerunning_a_run_dir_with_another_method_is_refused_and_keeps_its_config(tiny, tmp_path):
    run_dir = tmp_path / "run"
    common = [*tiny, "data.limit=1", "steps_scale=0.0004", f"hydra.run.dir={run_dir}"]
    sphinx_run(*common, cwd=tmp_path)
    stale = run_dir / "images" / "astronaut" / ".record.json.0badc0ffee.part"
    stale.write_text("{half")
    config_before = (run_dir / ".hydra" / "config.yaml").read_text()
    refused = sphinx_run(*common, "method=wplus", cwd=tmp_path, check=False)
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert refused.returncode == 2 and len(errors) == 1, refused.stderr[-2000:]
    assert 'method.name ("sphinx" -> "wplus")' in errors[0] and "start a new run" in errors[0]
    assert (run_dir / ".hydra" / "config.yaml").read_text() == config_before
    assert read_rows(run_dir)[0]["method"] == "sphinx"
    # more images, same configuration: resumes (the job in process; the refusal above is the command's)
    run_in_process(*[o for o in common if not o.startswith("hydra.")], "data.limit=2", run_dir=run_dir)
    rows = read_rows(run_dir)
    assert [r["image"] for r in rows] == ["astronaut", "chelsea"] and not stale.exists()
    assert json.loads((run_dir / "run.json").read_text())["fingerprint"]["method.name"] == "sphinx"


DEEPLY_NESTED = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    "file, tampered, problem",
    [
        ("images/astronaut/record.json", "{half", "not JSON"),
        ("images/astronaut/record.json", DEEPLY_NESTED, "JSON nested too deeply"),
        ("images/astronaut/record.json", '{"image": "astronaut"}', "method is None"),
        ("run.json", DEEPLY_NESTED, "unreadable run fingerprint"),
    ],
    ids=["half", "nested", "fields", "fingerprint"],
)
def test_a_tampered_run_dir_file_is_refused_in_one_line_before_any_compute(tiny, tmp_path, file, tampered, problem):
    run_dir, job = tmp_path / "run", [*tiny, "steps_scale=0.0004"]
    run_in_process(*job, "data.limit=1", run_dir=run_dir)
    kept = (run_dir / "images" / "astronaut" / "state.pt").read_bytes()
    (run_dir / file).write_text(tampered)
    with pytest.raises(ConfigError) as refused:
        run_in_process(*job, "data.limit=2", run_dir=run_dir)
    message = str(refused.value)
    assert message.startswith(f"{run_dir / file}: ") and problem in message and "\n" not in message
    assert "restore it" in message and not (run_dir / "images" / "chelsea").exists()
    assert (run_dir / "images" / "astronaut" / "state.pt").read_bytes() == kept


def test_an_edited_record_field_is_named_in_the_refusal(generator, tmp_path):
    trainer_pass(generator, tmp_path, limit=1)
    record_path = tmp_path / "images" / "astronaut" / "record.json"
    record = json.loads(record_path.read_text())
    for field, value, said in (
        ("index", "first", "index is 'first'"),
        ("psnr", "high", "psnr is 'high'"),
        ("stem", "../..", "stem is '../..'"),
        ("status", "great", "status is 'great'"),
    ):
        record_path.write_text(json.dumps({**record, field: value}))
        with pytest.raises(ConfigError, match=re.escape(said)):
            OutputWriter(tmp_path, method="wplus", degradation="none", generator="tiny").done_ids()


@pytest.mark.slow
def test_ddp_with_fewer_pending_images_than_ranks_finishes(tiny, tmp_path):
    run_dir = tmp_path / "run"
    sphinx_run(
        *tiny,
        "data.limit=1",
        "steps_scale=0.0004",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert [r["image"] for r in read_rows(run_dir)] == ["astronaut"]


# --- one run at a time in a run dir ------------------------------------------------------------


def files_of(folder) -> dict:
    return {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_a_run_dir_held_by_another_run_is_refused_in_one_line_and_left_as_it_was(tiny, tmp_path):
    run_dir = tmp_path / "run"
    common = [*tiny, "data.limit=1", "steps_scale=0.0004"]
    run_in_process(*common, run_dir=run_dir)
    with RunDirLock(run_dir):  # another run holds it
        before = files_of(run_dir)
        with pytest.raises(SphinxError) as refused:
            run_in_process(*common, "data.limit=2", run_dir=run_dir)
        assert files_of(run_dir) == before  # nothing written, nothing lost
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"{run_dir} is in use by another run (pid ")
    assert message.endswith("; wait for it to end, or start a new run (leave out hydra.run.dir, or give a new folder)")
    run_in_process(*common, "data.limit=2", run_dir=run_dir)  # the holder gone, it resumes
    assert [r["image"] for r in read_rows(run_dir)] == ["astronaut", "chelsea"]


@pytest.mark.slow  # two subprocesses of the entry point at once
def test_a_second_run_started_into_a_busy_run_dir_is_refused_and_the_first_runs_on(tiny, tmp_path):
    run_dir = tmp_path / "run"
    # a run long enough to be still inverting when the second one has started up
    first = start(*tiny, "data.limit=1", "method.steps=1000000", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (run_dir / "run.json").is_file():  # written once the run dir accepted the first
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()[-3000:]
            time.sleep(0.1)
        second = sphinx_run(*tiny, "method=wplus", f"hydra.run.dir={run_dir}", cwd=tmp_path, check=False)
        assert first.poll() is None, "the first run ended before the second one was refused"
    finally:
        first.send_signal(signal.SIGTERM)
        _, first_stderr = first.communicate(timeout=TIMEOUT)
    errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
    assert second.returncode == 2 and len(errors) == 1, second.stderr[-3000:]
    assert errors[0].startswith(f"error: {run_dir} is in use by another run (pid {first.pid} on ")
    # the first stops as SIGTERM asks, its batch saved and no traceback: nothing of its work is lost
    assert first.returncode == 143 and "Traceback" not in first_stderr, first_stderr[-3000:]
    assert list((run_dir / "inflight").glob("*.pt"))
    config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert config.method.name == "sphinx" and config.method.steps == 1000000  # the first run's


@pytest.mark.slow  # subprocesses of the entry point: ~10 s of CPU each to import alone
def test_a_refused_run_leaves_no_hydra_config_behind(tiny, tmp_path):
    run_dir = tmp_path / "run"
    run_in_process(*tiny, "data.limit=1", "steps_scale=0.0004", run_dir=run_dir)
    accepted = {path.name: path.read_text() for path in (run_dir / ".hydra").iterdir()}
    assert OmegaConf.load(run_dir / ".hydra" / "config.yaml").data.limit == 1  # what ran
    assert list(OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")) == [*tiny, "data.limit=1", "steps_scale=0.0004"]
    refused = sphinx_run(*tiny, "data.limit=0", f"hydra.run.dir={run_dir}", cwd=tmp_path, check=False)
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert refused.returncode == 2 and len(errors) == 1 and "data.limit" in errors[0], refused.stderr[-3000:]
    assert {path.name: path.read_text() for path in (run_dir / ".hydra").iterdir()} == accepted
    fresh = tmp_path / "fresh"
    refused = sphinx_run(*tiny, "data.limit=0", f"hydra.run.dir={fresh}", cwd=tmp_path, check=False)
    assert refused.returncode == 2 and not (fresh / ".hydra").exists()  # no config that never ran
