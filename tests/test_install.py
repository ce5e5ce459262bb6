"""A built wheel, installed into a fresh virtual environment, runs the entry points without the
repository: its configs travel inside the package. An editable install runs them from any folder,
the parent folder of a clone named ``sphinx`` included."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 600


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": ""}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def fresh_venv(root: Path) -> Path:
    """The python of a new venv under ``root`` that borrows its dependencies (torch, Lightning, ...)
    from this interpreter's site-packages, so that nothing is downloaded; sphinx is not among them."""
    venv.EnvBuilder(with_pip=False).create(root / "venv")
    python = root / "venv" / "bin" / "python"
    site_packages = Path(
        run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root).stdout.strip()
    )
    # A .pth line only adds the folder to sys.path; the .pth files inside it (this checkout's
    # editable install among them) are not run, so `sphinx` can only come from what is installed.
    (site_packages / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def pip_install(python: Path, *args: str, cwd: Path) -> None:
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", *args], cwd=cwd)


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> Path:
    """The python of a fresh venv holding only the wheel (and the borrowed dependencies)."""
    root = tmp_path_factory.mktemp("wheel")
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(REPO_ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(root / "dist"),
            "-q",
        ],
        cwd=root,
    )
    (wheel,) = (root / "dist").glob("sphinx_inversion-*.whl")
    python = fresh_venv(root)
    pip_install(python, str(wheel), cwd=root)
    return python


@pytest.mark.slow
def test_the_installed_wheel_runs_the_main_job_and_the_report_outside_the_repository(installed_wheel, tmp_path):
    where = run([str(installed_wheel), "-c", "import sphinx; print(sphinx.__file__)"], cwd=tmp_path).stdout
    assert str(REPO_ROOT) not in where and "site-packages" in where

    run_dir = tmp_path / "run"
    result = run(
        [
            str(installed_wheel),
            "-m",
            "sphinx.run",
            "+experiment=ood_faces",
            "method.steps=3",
            "data.limit=1",
            "logger=none",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
    )
    assert "sphinx_warm / none: 1 ok, 0 failed; 3 steps;" in result.stdout
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == {"steps": 3}

    run([str(installed_wheel), "-m", "sphinx.report", str(run_dir)], cwd=tmp_path)
    assert "sphinx_warm" in (run_dir / "report.md").read_text()


@pytest.mark.slow
def test_the_installed_wheel_lists_each_entry_points_own_config_groups(installed_wheel, tmp_path):
    run_help = run([str(installed_wheel), "-m", "sphinx.run", "--help"], cwd=tmp_path).stdout
    listing = run_help.split("== Configuration groups ==")[1].split("== Config ==")[0]
    groups = {line.split(":")[0] for line in listing.splitlines() if ": " in line}
    assert groups == {"data", "degradation", "experiment", "generator", "logger", "method", "trainer"}
    assert "experiment: ablation, budget, ood_faces, restoration\n" in listing

    edit_help = run([str(installed_wheel), "-m", "sphinx.edit", "--help"], cwd=tmp_path).stdout
    assert "edit: attribute_brightness" in edit_help
    # sphinx.edit composes sphinx.run's groups through its search path, installed as well.
    edit_job = run(
        [str(installed_wheel), "-m", "sphinx.edit", "+experiment=edit_morph", "--cfg", "job"], cwd=tmp_path
    ).stdout
    assert "experiment_name: edit_morph" in edit_job and "source: demo" in edit_job

    train_help = run([str(installed_wheel), "-m", "sphinx.train", "--help"], cwd=tmp_path).stdout
    assert "model: demo64, tiny16" in train_help


# What `pip install -e .` reads; the rest of a clone (tests, experiments, notebooks) plays no part.
PACKAGE_FILES = ("setup.py", "setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md", "sphinx", "conf")


@pytest.mark.slow
def test_an_editable_install_runs_from_the_parent_folder_of_a_clone_named_sphinx(tmp_path):
    """Python puts the working directory first on sys.path, where the clone's folder is a namespace
    package `sphinx`; the installed package must win over it, also with a build/ folder left behind."""
    clone = tmp_path / "sphinx"
    clone.mkdir()
    for name in PACKAGE_FILES:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, clone / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, clone / name)
    python = fresh_venv(tmp_path / "env")
    pip_install(python, "--no-build-isolation", "-e", str(clone), cwd=tmp_path)
    (clone / "build" / "lib" / "sphinx").mkdir(parents=True)  # what `pip wheel .` leaves in a clone
    (clone / "build" / "lib" / "sphinx" / "__init__.py").write_text("")

    where = run([str(python), "-c", "import sphinx; print(sphinx.__file__)"], cwd=tmp_path).stdout
    assert where.strip() == str(clone / "sphinx" / "__init__.py")
    assert "Configuration groups" in run([str(python), "-m", "sphinx.run", "--help"], cwd=tmp_path).stdout
    run_dir = tmp_path / "run"
    job = [str(python), "-m", "sphinx.run", "+experiment=ood_faces", "method.steps=1", "data.limit=1", "logger=none"]
    result = run([*job, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert "sphinx_warm / none: 1 ok, 0 failed; 1 steps;" in result.stdout
