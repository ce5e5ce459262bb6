"""Shrinking a training checkpoint to the generator file that is shipped or shared.

A training checkpoint (``g_ema``, ``g``, ``d``, optimizer states, ...) is several times the
size of the generator. :func:`export_generator` keeps what :func:`sphinx.generators.load_generator`
needs: ``g_ema`` (optionally in float16) and ``latent_avg`` (float32), plus the architecture and a
short provenance record.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from sphinx.errors import CheckpointError
from sphinx.utils.files import atomic_open
from sphinx.utils.untrusted_files import load_torch_file

PROVENANCE_KEYS = ("step", "images_seen", "wall_seconds")


def export_generator(
    checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], *, dtype: torch.dtype = torch.float16
) -> Path:
    """Write ``{"g_ema", "latent_avg", "config", "training"}`` from a training checkpoint.

    Args:
        checkpoint: a ``checkpoints/last.pt`` of :class:`sphinx.lit.gan.GANModule`.
        out: the file to write (atomically).
        dtype: storage type of the generator's floating-point tensors; the loader casts back
            to float32.

    Returns:
        ``out`` as a Path.

    Raises:
        CheckpointError: the checkpoint lacks ``g_ema`` or ``latent_avg``.
    """
    payload = load_torch_file(checkpoint, what="training checkpoint", remedy="give a last.pt that sphinx.train wrote")
    missing = {"g_ema", "latent_avg"} - set(payload if isinstance(payload, dict) else ())
    if missing:
        raise CheckpointError(
            f"{checkpoint}: not a training checkpoint with an EMA generator (lacks {sorted(missing)})"
        )
    exported = {
        "g_ema": {
            key: value.to(dtype) if value.is_floating_point() else value for key, value in payload["g_ema"].items()
        },
        "latent_avg": payload["latent_avg"].float(),
        "config": payload.get("config", {}),
        "training": {key: payload[key] for key in PROVENANCE_KEYS if key in payload},
    }
    out = Path(out)
    with atomic_open(out) as stream:
        torch.save(exported, stream)
    return out
