"""Shared test fixtures: the reference test vectors, kept in the repository (tests/data/fixtures),
the tiny generator, and the one Hydra compose fixture. Helper functions are in ``tests/helpers``.

The vectors were made with the public reference implementations (see each folder's README); a
clone needs nothing outside itself to run the suite. ``SPHINX_FIXTURES`` may point elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "data" / "fixtures"


def _fixtures_root() -> Path:
    configured = os.environ.get("SPHINX_FIXTURES")
    return Path(configured) if configured else FIXTURES


@pytest.fixture(scope="session")
def fixtures_root() -> Path:
    """The folder of reference test vectors (in the repository, so never missing on a clone)."""
    root = _fixtures_root()
    if not root.is_dir():
        pytest.fail(f"reference fixtures not found at {root}; SPHINX_FIXTURES points at no folder")
    return root


@pytest.fixture(scope="session")
def tiny_generator(fixtures_root):
    """The 32 px reference generator of the fixtures: fast enough for every unit test."""
    from sphinx.generators import load_generator

    return load_generator(fixtures_root / "rosinality" / "tiny_g32.pt")


@pytest.fixture
def compose():
    """``compose(entry point, *overrides, hydra=False)``: a config as ``python -m sphinx.<entry point>`` composes it."""
    from helpers import compose

    return compose


def pytest_configure(config) -> None:
    """Torch threads per test process: under pytest-xdist each worker takes its share of the cores
    (oversubscribed threads slow every worker down); alone, one thread. The tests run 32-64 px
    tensors, on which a second intra-op thread spins more than it computes: on this project's
    2-core CI machine the fast tier took the same wall time with one thread as with two, and 11%
    less CPU."""
    import torch

    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workers)) if workers else 1)


def pytest_collection_modifyitems(config, items) -> None:
    """Slow tests first: spread over several workers (make test), the longest jobs start at once
    instead of holding the whole suite up at its end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


_CPU_REPORT = os.environ.get("SPHINX_TEST_CPU_REPORT")  # a file: each test's CPU seconds (with its subprocesses)


if _CPU_REPORT:
    import resource

    def _cpu_seconds() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        start = _cpu_seconds()
        yield
        with open(_CPU_REPORT, "a") as report:
            report.write(f"{_cpu_seconds() - start:.2f}\t{item.nodeid}\n")
