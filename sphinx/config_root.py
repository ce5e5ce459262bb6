"""Where the Hydra configs are, for a source checkout and for an installed wheel alike.

The repository keeps its configs at the top (``conf/``); a wheel carries the same tree inside
the package (``sphinx/conf/``, mapped in ``setup.py``). Each entry point has its own root, so
that its ``--help`` lists only its own groups:

- ``conf/run``: ``python -m sphinx.run``
- ``conf/edit``: ``python -m sphinx.edit`` (its ``edit`` group and edit experiments; every group
  of ``conf/run`` through its search path)
- ``conf/train``: ``python -m sphinx.train``
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

ENTRY_POINTS = ("run", "edit", "train")


def config_root() -> Path:
    """The folder holding ``run/``, ``edit/`` and ``train/``."""
    packaged = Path(str(resources.files("sphinx"))) / "conf"
    if (packaged / "run" / "config.yaml").is_file():
        return packaged
    # Source checkout or editable install: the repository's top-level conf/.
    return Path(__file__).resolve().parents[1] / "conf"


def config_dir(entry_point: str) -> str:
    """Absolute config directory of one entry point (what ``hydra.main`` and ``compose`` take)."""
    if entry_point not in ENTRY_POINTS:
        raise ValueError(f"unknown entry point {entry_point!r}; expected one of {ENTRY_POINTS}")
    return str(config_root() / entry_point)
