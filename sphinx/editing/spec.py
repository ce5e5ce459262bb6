"""What ``sphinx.edit`` does with each image, as its ``edit`` config group says."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sphinx.inversion.state import InversionState

KINDS = ("attribute", "morph", "direction")


@dataclass(frozen=True)
class EditSpec:
    """An edit, every option checked and its direction and states loaded.

    Attributes:
        kind: ``attribute``, ``morph`` or ``direction``.
        options: the ``edit`` group's keys (see ``conf/edit/edit/*.yaml``).
        direction: for ``direction``: ``[n_latent, style_dim]``, already loaded or computed.
        direction_name: how results.csv names it (``pca:0`` or the file).
        initial_states: saved states by image id (``states_from``), else None.
    """

    kind: str
    options: dict
    direction: torch.Tensor | None = None
    direction_name: str = ""
    initial_states: dict[str, InversionState] | None = None
