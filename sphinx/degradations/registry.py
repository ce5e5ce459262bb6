"""Degradations by config name: the names used on the command line and in configs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

from sphinx.degradations.base import Degradation
from sphinx.degradations.color import Colorization
from sphinx.degradations.compressed_sensing import CompressedSensing
from sphinx.degradations.identity import NoDegradation
from sphinx.degradations.masks import Inpainting
from sphinx.degradations.noise import GaussianNoise
from sphinx.degradations.resample import SuperResolution
from sphinx.errors import ConfigError

# read-only: no mutable global configuration
DEGRADATIONS: Mapping[str, type] = MappingProxyType(
    {
        cls.name: cls
        for cls in (NoDegradation, GaussianNoise, Inpainting, SuperResolution, CompressedSensing, Colorization)
    }
)


def build_degradation(name: str, **options: object) -> Degradation:
    """The degradation called ``name``, built with its constructor options.

    Args:
        name: one of :data:`DEGRADATIONS` (``none``, ``denoise``, ``inpaint``, ``superres``,
            ``compressed_sensing``, ``colorize``).
        **options: that class's constructor keywords, e.g. ``factor=4`` for ``superres``.

    Returns:
        The degradation, its options already checked.

    Raises:
        ConfigError: for an unknown name, an unknown option or a bad option value.
    """
    if name not in DEGRADATIONS:
        raise ConfigError(f"unknown degradation {name!r}; valid names: {', '.join(DEGRADATIONS)}")
    cls = DEGRADATIONS[name]
    known = [field.name for field in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(
            f"degradation {name!r} has no option {', '.join(unknown)}; its options: {', '.join(known) or '(none)'}"
        )
    return cls(**options)
