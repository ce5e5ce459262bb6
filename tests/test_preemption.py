"""Fault injection: SIGKILL and SIGTERM at random steps inside batches; the resumed run is whole."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from helpers import TIMEOUT, read_rows, run_in_process, sphinx_run, without_time

STOP_WITHIN_S = 5.0


@pytest.fixture
def tiny(fixtures_root) -> list[str]:
    return ["generator=custom", f"generator.source={fixtures_root / 'rosinality' / 'tiny_g32.pt'}", "logger=none"]


def launch(args: list[str], cwd, *, module: str = "sphinx.run") -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def newest_save(run_dir) -> float:
    return max((p.stat().st_mtime_ns for p in (run_dir / "inflight").glob("*.pt")), default=0)


@pytest.mark.slow
def test_sigkill_and_sigterm_inside_batches_resume_to_the_uninterrupted_results(tiny, tmp_path):
    common = [*tiny, "data.limit=2", "batch_size=1", "steps_scale=0.04", "checkpoint_every=20"]
    run_in_process(*common, run_dir=tmp_path / "whole")  # the uninterrupted reference
    run_dir = tmp_path / "interrupted"
    args = [*common, f"hydra.run.dir={run_dir}"]
    draw = random.Random(10)
    interrupted = []
    for trial, kind in enumerate([signal.SIGKILL, signal.SIGTERM]):  # each launch resumes the last one's state
        before = newest_save(run_dir) if run_dir.exists() else 0
        process = launch(args, tmp_path)
        deadline = time.monotonic() + TIMEOUT
        while newest_save(run_dir) <= before and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # wait until this launch is inside a batch and has saved once
        if process.poll() is not None:
            break  # the run finished before this trial could interrupt it
        time.sleep(draw.uniform(0, 0.3))  # a random step of the batch
        sent = time.monotonic()
        os.killpg(process.pid, kind)
        _, stderr = process.communicate(timeout=60)
        took = time.monotonic() - sent
        interrupted.append(kind)
        if kind == signal.SIGTERM:
            assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
            assert took < STOP_WITHIN_S, f"trial {trial}: SIGTERM took {took:.1f} s"
            assert "stopped by SIGTERM" in stderr and f"hydra.run.dir={run_dir}" in stderr
            assert not (run_dir / "results.csv").exists()
    assert signal.SIGTERM in interrupted and signal.SIGKILL in interrupted
    sphinx_run(*args, cwd=tmp_path)
    rows = read_rows(run_dir)
    assert sorted(r["image"] for r in rows) == ["astronaut", "chelsea"]  # every image exactly once
    assert without_time(rows) == without_time(read_rows(tmp_path / "whole"))
    # each image's quality curve survives the interruptions point for point (times aside)
    assert without_time(read_rows(run_dir, "curves.csv")) == without_time(read_rows(tmp_path / "whole", "curves.csv"))
    strays = [p for p in run_dir.rglob("*") if p.name.endswith((".part", ".tmp")) or "inflight" in p.parts]
    assert not strays, strays


@pytest.mark.slow  # a subprocess of the entry point (StopSignals alone: tests/unit/test_stop_signals.py)
@pytest.mark.parametrize("kind", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_a_batch_within_seconds_with_its_state_saved(tiny, tmp_path, kind):
    run_dir = tmp_path / "run"
    process = launch(
        [*tiny, "data.limit=1", "steps_scale=1", "checkpoint_every=100", f"hydra.run.dir={run_dir}"], tmp_path
    )
    deadline = time.monotonic() + TIMEOUT
    while not newest_save(run_dir) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # inside the 5000 steps of the only batch
    periodic = newest_save(run_dir)
    sent = time.monotonic()
    os.killpg(process.pid, kind)
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - sent < STOP_WITHIN_S
    assert process.returncode == 128 + kind, stderr[-2000:]
    assert f"stopped by {kind.name}; the batch in flight was saved" in stderr
    assert newest_save(run_dir) > periodic  # saved at the stop, not only at the last periodic save
    assert len(list((run_dir / "inflight").glob("*.pt"))) == 1 and not (run_dir / "results.csv").exists()


@pytest.mark.slow
def test_an_edit_stopped_by_sigterm_inside_an_attribute_batch_resumes_to_the_uninterrupted_results(tiny, tmp_path):
    common = [
        *tiny,
        "edit=attribute_rotate",
        "edit.fit_inversion=true",  # the inversion learned with the direction: one phase, then the control
        "data.limit=1",
        "method.steps=150",
        "method.lpips_weight=0",
        "edit.attribute_lr=0.01",
        "checkpoint_every=10",
    ]
    run_in_process(*common, run_dir=tmp_path / "whole", edit=True)  # the uninterrupted reference
    run_dir = tmp_path / "interrupted"
    process = launch([*common, f"hydra.run.dir={run_dir}"], tmp_path, module="sphinx.edit")
    deadline = time.monotonic() + TIMEOUT
    while not newest_save(run_dir) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # inside the attribute batch, after its first periodic save
    assert process.poll() is None, "the edit finished before it could be stopped"
    os.killpg(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "stopped by SIGTERM; the batch in flight was saved" in stderr and not (run_dir / "results.csv").exists()
    sphinx_run(*common, f"hydra.run.dir={run_dir}", cwd=tmp_path, module="sphinx.edit")
    assert without_time(read_rows(run_dir)) == without_time(read_rows(tmp_path / "whole"))
    assert without_time(read_rows(run_dir, "curves.csv")) == without_time(read_rows(tmp_path / "whole", "curves.csv"))
    assert not (run_dir / "inflight").exists()
