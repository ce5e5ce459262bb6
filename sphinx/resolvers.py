"""OmegaConf resolvers of sphinx's configs, registered once by the entry points.

``${scaled_steps:5000}`` in a method config is the source's step count times the run's
``steps_scale``. Because it is an interpolation, a step count given explicitly
(``method.steps=30``) replaces it and runs exactly as given: the scale shrinks only defaults.

``${config_dir:run}`` is the absolute config directory of an entry point, so that one entry
point's configs can search another's (sphinx.edit reuses every group of sphinx.run) wherever
the package is installed.
"""

from __future__ import annotations

import math

from omegaconf import OmegaConf

from sphinx.config_root import config_dir
from sphinx.errors import ConfigError


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
