"""Shared test fixtures: the reference test vectors, kept in the repository (tests/data/fixtures).

They were made with the public reference implementations (see each folder's README); a clone
needs nothing outside itself to run the suite. ``SPHINX_FIXTURES`` may point elsewhere.
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
