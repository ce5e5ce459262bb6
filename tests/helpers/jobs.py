"""Running an entry point's job as a test needs it, and reading the tables it writes."""

from __future__ import annotations

import contextlib
import csv
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from helpers.configs import compose
from sphinx.entry import run_job
from sphinx.rundir.signals import SIGNALS

TIMEOUT = 600


def sphinx_run(*args: str, cwd: Path, check: bool = True, module: str = "sphinx.run") -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` as a user types it, in its own process."""
    # One thread per process: DDP ranks share this machine's cores.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_SILENT": "true"}
    result = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def start(*args: str, cwd: Path, module: str = "sphinx.run") -> subprocess.Popen:
    """``python -m <module> <args>`` started in the background, one thread, its stderr kept."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_in_process(*overrides: str, run_dir: Path, edit: bool = False) -> dict:
    """The job of ``python -m sphinx.run`` (``sphinx.edit`` with ``edit``) in this process, as Hydra's
    launcher runs it: the config composed, its hydra node set aside as HydraConfig with ``run_dir``
    as the output folder. The same code path as the entry point without the 10 s of CPU a new
    process spends on imports."""
    cfg = compose("edit" if edit else "run", *overrides, hydra=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        HydraConfig.instance().set_config(OmegaConf.create({"hydra": cfg.hydra}))
        del cfg["hydra"]
    handlers = {number: signal.getsignal(number) for number in SIGNALS}  # the run installs its own
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as sphinx_run's processes: results equal to theirs, bit for bit
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_job(cfg, edit=edit)
    finally:
        torch.set_num_threads(threads)
        HydraConfig.instance().cfg = None
        for number, handler in handlers.items():
            signal.signal(number, handler)


def read_rows(run_dir: Path, name: str = "results.csv") -> list[dict]:
    with open(run_dir / name, newline="") as stream:
        return list(csv.DictReader(stream))


def without_time(rows: list[dict]) -> list[dict]:
    """Rows as a rerun must reproduce them: all but the seconds."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@contextlib.contextmanager
def disk_full_past(size: int) -> Iterator[None]:
    """Writes in this process past ``size`` bytes of a file fail, as on a full disk (the kernel
    refuses them with EFBIG, "File too large", instead of ENOSPC; Python ignores SIGXFSZ)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
