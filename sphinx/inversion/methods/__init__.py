"""Inversion methods by name: SPHInX and its variants, and the baselines."""

from __future__ import annotations

from types import MappingProxyType

from sphinx.inversion.methods.base import Method, ParamGroup, Stage
from sphinx.inversion.methods.latent import (ProjectW, ProjectWPlus, ProjectWPlusNoise, WConfig, WPlusConfig,
                                             WPlusNoiseConfig)
from sphinx.inversion.methods.pti import PivotalTuning, PTIConfig
from sphinx.inversion.methods.sphinx import Sphinx, SphinxConfig

# name -> (implementation, default hyperparameters)
METHODS = MappingProxyType({
    "sphinx": (Sphinx, SphinxConfig()),
    "sphinx_ps": (Sphinx, SphinxConfig(content_head=False, optimize_noise=False)),
    "sphinx_ps_pc": (Sphinx, SphinxConfig(content_head=True, optimize_noise=False)),
    # Ours, not the authors': full SPHInX with the content head started at G's constant input.
    "sphinx_warm": (Sphinx, SphinxConfig(content_init="constant")),
    "w": (ProjectW, WConfig()),
    "wplus": (ProjectWPlus, WPlusConfig()),
    "wplus_noise": (ProjectWPlusNoise, WPlusNoiseConfig()),
    "pti": (PivotalTuning, PTIConfig()),
})

__all__ = ["METHODS", "Method", "ParamGroup", "Stage", "Sphinx", "SphinxConfig", "ProjectW", "WConfig",
           "ProjectWPlus", "WPlusConfig", "ProjectWPlusNoise", "WPlusNoiseConfig", "PivotalTuning", "PTIConfig"]
