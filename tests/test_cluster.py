"""Beyond one machine: sweeps through submitit's launchers, requeue after a scheduler's warning
signal, two "nodes" under torchrun, and one folder split over many jobs. The local executor of
submitit stands in for SLURM: it runs, signals and requeues jobs the way the SLURM one does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import TIMEOUT, read_rows, run_in_process, sphinx_run, start, without_time

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[cluster]'")


@pytest.fixture
def tiny(fixtures_root) -> list[str]:
    return ["generator=custom", f"generator.source={fixtures_root / 'rosinality' / 'tiny_g32.pt'}", "logger=none"]


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(path.parent for path in sweep_dir.glob("*/results.csv"))


@pytest.mark.slow
def test_a_2x2_sweep_of_methods_and_shards_through_the_local_launcher_equals_the_basic_launchers(tiny, tmp_path):
    images = {"astronaut", "chelsea", "coffee"}
    sweep = ["-m", *tiny, "data.limit=3", "method=w,wplus", "method.steps=3", "data.num_shards=2", "data.shard=0,1"]
    sphinx_run(*sweep, f"hydra.sweep.dir={tmp_path / 'basic'}", cwd=tmp_path)
    sphinx_run(*sweep, "hydra/launcher=local", f"hydra.sweep.dir={tmp_path / 'local'}", cwd=tmp_path)
    basic, local = job_dirs(tmp_path / "basic"), job_dirs(tmp_path / "local")
    assert [d.name for d in local] == [d.name for d in basic] and len(local) == 4
    for one, other in zip(basic, local):
        assert without_time(read_rows(one)) == without_time(read_rows(other))
    for method in ("w", "wplus"):  # the two shards of a method: every image exactly once
        shards = [[r["image"] for r in read_rows(d)] for d in local if read_rows(d)[0]["method"] == method]
        assert len(shards) == 2 and sorted(shards[0] + shards[1]) == sorted(images)
    reports = [
        subprocess.run([sys.executable, "-m", "sphinx.report", str(tmp_path / name)], check=True, capture_output=True)
        for name in ("basic", "local")
    ]
    assert (tmp_path / "basic" / "report.csv").read_text() == (tmp_path / "local" / "report.csv").read_text()
    assert "| w | 3 ok |" in reports[1].stdout.decode()  # the shards merged into one cell per method


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow
def test_a_job_warned_by_the_scheduler_saves_its_batch_is_requeued_and_resumes_to_the_same_results(tiny, tmp_path):
    common = [*tiny, "data.limit=1", "method=w", "method.steps=200", "checkpoint_every=10"]
    run_in_process(*common, run_dir=tmp_path / "whole")  # the uninterrupted reference
    sweep_dir = tmp_path / "sweep"
    launcher = start("-m", *common, "hydra/launcher=local", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    deadline = time.monotonic() + TIMEOUT
    while not list(sweep_dir.glob("*/inflight/*.pt")) and launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the job is inside its first batch and has saved it once
    assert launcher.poll() is None, "the sweep finished before its job could be warned"
    # submitit's local controller runs the job as its child; the warning goes to the job alone
    controllers = [int(p.name) for p in (sweep_dir / ".submitit").iterdir() if p.name.isdigit()]
    (job,) = [pid for controller in controllers for pid in children(controller)]
    os.kill(job, signal.SIGUSR2)  # what submitit has SLURM send before the time limit or on preemption
    _, stderr = launcher.communicate(timeout=TIMEOUT)
    assert launcher.returncode == 0, stderr[-3000:]
    logs = "".join(path.read_text() for path in (sweep_dir / ".submitit").rglob("*_log.*"))
    assert "stopped by SIGUSR2; the batch in flight was saved" in logs and "Requeued job" in logs
    (run_dir,) = job_dirs(sweep_dir)
    assert without_time(read_rows(run_dir)) == without_time(read_rows(tmp_path / "whole"))
    assert not (run_dir / "inflight").exists()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_under_torchrun_give_each_image_once_with_the_single_process_results(tiny, tmp_path):
    common = [*tiny, "data.limit=3", "batch_size=2", "steps_scale=0.004", "trainer.accelerator=cpu"]
    run_in_process(*common, run_dir=tmp_path / "single")
    port, run_dir = free_port(), tmp_path / "nodes"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes=2",
                "--nproc-per-node=1",
                f"--node-rank={rank}",
                "--master-addr=127.0.0.1",
                f"--master-port={port}",
                "-m",
                "sphinx.run",
                *common,
                "trainer.strategy=ddp",
                "trainer.num_nodes=2",
                "trainer.devices=1",
                f"hydra.run.dir={run_dir}",
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=TIMEOUT) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][1][-3000:] + outputs[1][1][-3000:]
    single, both = read_rows(tmp_path / "single"), read_rows(run_dir)
    assert sorted(r["image"] for r in both) == ["astronaut", "chelsea", "coffee"]  # each image once
    for a, b in zip(single, both):
        assert a["image"] == b["image"] and abs(float(a["psnr"]) - float(b["psnr"])) <= 0.01
    assert sum("results: " in out for out, _ in outputs) == 1  # one process wrote and summed up
