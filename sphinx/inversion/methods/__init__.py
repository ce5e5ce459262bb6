"""Inversion methods by name: SPHInX and its variants, and the baselines."""

from __future__ import annotations

from types import MappingProxyType

from sphinx.errors import ConfigError
from sphinx.inversion.methods.base import Method, MethodConfig, ParamGroup, Stage
from sphinx.inversion.methods.ilo import ILOConfig, IntermediateLayers
from sphinx.inversion.methods.latent import (
    ProjectW,
    ProjectWPlus,
    ProjectWPlusNoise,
    WConfig,
    WPlusConfig,
    WPlusNoiseConfig,
)
from sphinx.inversion.methods.pti import PivotalTuning, PTIConfig
from sphinx.inversion.methods.sphinx import Sphinx, SphinxConfig

# name -> (config class, the defaults this variant changes); conf/run/method/<name>.yaml says the same.
# In the order tables list them.
METHODS = MappingProxyType(
    {
        "sphinx": (SphinxConfig, {}),
        # Ours, not the authors': full SPHInX with the content head started at G's constant input.
        "sphinx_warm": (SphinxConfig, {"content_init": "constant"}),
        # Ours: sphinx_warm at a higher lr for a tenth of the steps (experiments/sphinx_fast).
        "sphinx_fast": (SphinxConfig, {"content_init": "constant", "lr": 5e-3, "steps": 500}),
        "sphinx_ps": (SphinxConfig, {"content_head": False, "optimize_noise": False}),
        "sphinx_ps_pc": (SphinxConfig, {"content_head": True, "optimize_noise": False}),
        "w": (WConfig, {}),
        "wplus": (WPlusConfig, {}),
        "wplus_noise": (WPlusNoiseConfig, {}),
        "pti": (PTIConfig, {}),
        "ilo": (ILOConfig, {}),
    }
)


def method_config(name: str, **options) -> MethodConfig:
    """A registered method's config: its defaults with ``options`` changed, checked.

    Raises:
        ConfigError: an unknown method or option, or a value that cannot work.
    """
    if name not in METHODS:
        raise ConfigError(f"unknown method '{name}'; choose one of {', '.join(METHODS)}")
    config_class, variant = METHODS[name]
    config_class.refuse_unknown(name, options)
    return config_class(**{**variant, **options, "name": name})


__all__ = [
    "METHODS",
    "Method",
    "MethodConfig",
    "ParamGroup",
    "Stage",
    "Sphinx",
    "SphinxConfig",
    "ProjectW",
    "WConfig",
    "ProjectWPlus",
    "WPlusConfig",
    "ProjectWPlusNoise",
    "WPlusNoiseConfig",
    "PivotalTuning",
    "PTIConfig",
    "IntermediateLayers",
    "ILOConfig",
    "method_config",
]
