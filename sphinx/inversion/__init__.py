"""Inversion of images into a frozen StyleGAN2: SPHInX, its variants and the baselines.

The entry point is :func:`invert` (what it runs: a :class:`MethodConfig`, from :func:`method_config`; how its
steps run: :class:`Execution`); a result's per-image states re-render with :func:`render_state` and persist with
:func:`save_state` / :func:`load_state`.
"""

from sphinx.inversion.execution import Execution
from sphinx.inversion.loop import InversionResult, StepReport, invert
from sphinx.inversion.methods import METHODS, MethodConfig, method_config
from sphinx.inversion.state import InversionState, load_state, render_state, save_state

__all__ = [
    "METHODS",
    "Execution",
    "InversionResult",
    "InversionState",
    "MethodConfig",
    "StepReport",
    "invert",
    "load_state",
    "method_config",
    "render_state",
    "save_state",
]
