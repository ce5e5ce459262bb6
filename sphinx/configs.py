"""Where the Hydra configs are, for a source checkout and for an installed wheel alike, and the
resolvers they use.

The repository keeps its configs at the top (``conf/``); a wheel carries the same tree inside
the package (``sphinx/conf/``, mapped in ``setup.py``). Each entry point has its own root, so
that its ``--help`` lists only its own groups:

- ``conf/run``: ``python -m sphinx.run``
- ``conf/edit``: ``python -m sphinx.edit`` (its ``edit`` group and edit experiments; every group
  of ``conf/run`` through its search path)
- ``conf/train``: ``python -m sphinx.train``

``${scaled_steps:5000}`` in a method config is the source's step count times the run's
``steps_scale``. Because it is an interpolation, a step count given explicitly
(``method.steps=30``) replaces it and runs exactly as given: the scale shrinks only defaults.
``${config_dir:run}`` is the absolute config directory of an entry point, so that one entry
point's configs can search another's (sphinx.edit reuses every group of sphinx.run) wherever
the package is installed. Importing this module registers both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from omegaconf import OmegaConf

from sphinx.errors import ConfigError

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


def check_group_choices(entry_point: str, overrides: Sequence[str]) -> None:
    """Refuse a ``group=option`` override that names no option, before Hydra composes.

    Hydra's own answer is a 17-line error with exit status 1; this is one line listing the
    options. Overrides of keys (``method.steps=30``), of Hydra's groups and sweep functions pass.

    Raises:
        ConfigError: e.g. ``method=no_such``, ``+experiment=typo`` or one option of a sweep list.
    """
    roots = [Path(config_dir(entry_point))]
    if entry_point == "edit":  # sphinx.edit searches every group of sphinx.run too
        roots.append(Path(config_dir("run")))
    for override in overrides:
        key, equals, value = override.partition("=")
        group = key.lstrip("+~").split("@")[0]
        if override.startswith("-") or not equals or not group or group.startswith("hydra") or "." in group:
            continue
        folders = [root / group for root in roots if (root / group).is_dir()]
        if not folders or value.startswith(_SWEEP_FUNCTIONS):
            continue
        options = sorted({path.stem for folder in folders for path in folder.glob("*.yaml")})
        for choice in (c.strip() for c in value.split(",")):
            if choice and choice != "null" and choice not in options:
                raise ConfigError(f"{group}={choice}: no such {group} option; choose one of {', '.join(options)}")


_SWEEP_FUNCTIONS = ("choice(", "range(", "interval(", "tag(", "glob(", "sort(", "shuffle(")


def check_steps_scale(scale) -> float:
    """``steps_scale`` as a number, or a one-line error: it must be positive and finite."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < math.inf:
        raise ConfigError(f"steps_scale must be a positive number, got {scale!r}")
    return float(scale)


def scaled_steps(count: int, *, _root_) -> int:
    """``count`` times ``steps_scale`` (rounded up, at least 1; 0 stays 0)."""
    scale = check_steps_scale(_root_.get("steps_scale", 1.0))
    return max(1, math.ceil(int(count) * scale)) if count else 0


def register() -> None:
    """Register the resolvers (idempotent)."""
    OmegaConf.register_new_resolver("scaled_steps", scaled_steps, replace=True)
    OmegaConf.register_new_resolver("config_dir", config_dir, replace=True)


register()
