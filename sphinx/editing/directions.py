"""Latent directions: unsupervised ones from the generator alone, or loaded from a file, and
applied to a saved inversion."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sphinx.editing.latents import layer_mask, state_inputs
from sphinx.errors import CheckpointError, ConfigError
from sphinx.generators.stylegan2 import Generator
from sphinx.inversion.methods.base import GeneratorInputs
from sphinx.inversion.state import InversionState
from sphinx.utils.untrusted_files import load_torch_file

PCA_SEED = 0


@dataclass(frozen=True)
class PrincipalDirections:
    """Principal axes of W, as GANSpace computes them.

    Attributes:
        directions: unit axes ``[C, style_dim]``, by decreasing variance; each axis's sign is
            fixed so that its largest-magnitude entry is positive.
        stds: the standard deviation of W along each axis, ``[C]``.
        mean: the mean W ``[style_dim]``.
    """

    directions: torch.Tensor
    stds: torch.Tensor
    mean: torch.Tensor


@torch.no_grad()
def principal_directions(
    generator: Generator, *, samples: int = 10_000, components: int = 8, seed: int = PCA_SEED
) -> PrincipalDirections:
    """PCA of ``samples`` W = mapping(z) draws (z seeded by ``seed``).

    Args:
        generator: the generator whose mapping network is sampled.
        samples: how many W to draw (GANSpace uses about 10^6 on GPU; 10^4 is stable for the
            leading axes).
        components: how many axes to return.
        seed: seed of the z draws.
    """
    if not 1 <= components <= generator.style_dim or samples <= components:
        raise ConfigError(
            f"PCA needs 1 <= components <= {generator.style_dim} and samples > components, got "
            f"{components} components from {samples} samples"
        )
    draw = torch.Generator().manual_seed(seed)
    z = torch.randn(samples, generator.style_dim, generator=draw).to(generator.input.input.device)
    w = torch.cat([generator.mapping(chunk) for chunk in z.split(4096)]).double()  # [samples, style_dim]
    mean = w.mean(dim=0)
    _, singular, axes = torch.linalg.svd(w - mean, full_matrices=False)  # axes: [style_dim, style_dim]
    axes = axes[:components]
    signs = torch.sign(axes.gather(1, axes.abs().argmax(dim=1, keepdim=True)))  # [C, 1]
    stds = singular[:components] / (samples - 1) ** 0.5
    return PrincipalDirections((axes * signs).float(), stds.float(), mean.float())


def as_layer_direction(
    direction: torch.Tensor | np.ndarray, generator: Generator, *, source: str | os.PathLike = "direction"
) -> torch.Tensor:
    """A direction of shape ``[style_dim]`` (every W+ row) or ``[n_latent, style_dim]``, as
    ``[n_latent, style_dim]`` on the generator's device; any other shape is refused."""
    direction = torch.as_tensor(np.asarray(direction) if isinstance(direction, np.ndarray) else direction)
    rows, width = generator.n_latent, generator.style_dim
    if direction.shape == (width,):
        direction = direction.expand(rows, width)
    elif direction.shape != (rows, width):
        raise ConfigError(
            f"{source}: a direction must have shape [{width}] or [{rows}, {width}] for this "
            f"generator, got {list(direction.shape)}"
        )
    if not direction.is_floating_point() or not bool(torch.isfinite(direction).all()):
        raise ConfigError(f"{source}: a direction must hold finite floating-point values")
    return direction.float().to(generator.input.input.device)


def load_direction(path: str | os.PathLike, generator: Generator) -> torch.Tensor:
    """Read a direction from ``.npy`` or ``.pt`` (a bare tensor), as ``[n_latent, style_dim]``.

    ``.pt`` files are read with ``weights_only=True`` within the bounds of
    :mod:`sphinx.utils.untrusted_files`; nothing in them is executed.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such direction file")
    try:
        if path.suffix == ".npy":
            # Mapped, not read, and copied only once its size is plausible: a header may declare
            # gigabytes over a sparse file.
            values = np.load(path, mmap_mode="r", allow_pickle=False)
            if values.size > generator.n_latent * generator.style_dim:
                raise ConfigError(
                    f"{path}: a direction must have shape [{generator.style_dim}] or "
                    f"[{generator.n_latent}, {generator.style_dim}] for this generator, got {list(values.shape)}"
                )
            values = np.array(values)
        elif path.suffix == ".pt":
            values = load_torch_file(path, what="direction", remedy=f"save a tensor of shape [{generator.style_dim}]")
        else:
            raise ConfigError(f"{path}: a direction file must be .npy or .pt")
    except ConfigError:
        raise
    except CheckpointError as refused:
        raise ConfigError(str(refused)) from None
    except Exception as broken:  # numpy raises several types for foreign files
        raise ConfigError(
            f"{path}: not a readable direction ({type(broken).__name__}); save a tensor of shape "
            f"[{generator.style_dim}] with numpy.save or torch.save"
        ) from None
    if not isinstance(values, (np.ndarray, torch.Tensor)):
        raise ConfigError(f"{path}: holds a {type(values).__name__}, not an array; save the direction tensor itself")
    return as_layer_direction(values, generator, source=path)


@torch.no_grad()
def apply_direction(
    generator: Generator,
    state: InversionState,
    direction: torch.Tensor,
    *,
    strengths: Sequence[float],
    layers: Sequence[int | None] = (0, None),
    source: str | os.PathLike | None = None,
) -> torch.Tensor:
    """Move a saved inversion along a direction: ``w + s * direction`` on the chosen W+ rows.

    Args:
        generator: the generator the state was made with (checked).
        state: a saved inversion of an editable method.
        direction: ``[style_dim]`` or ``[n_latent, style_dim]``, applied as given (scale a PCA
            axis by its std to step in standard deviations).
        strengths: the steps ``s``, one frame each; 0 re-renders the state.
        layers: ``[start, stop)`` W+ rows to move (stop None: to the last).
        source: the state's file, named in errors.

    Returns:
        ``[len(strengths), 3, H, W]`` in [-1, 1].
    """
    direction = as_layer_direction(direction, generator)
    mask = layer_mask(generator, layers)
    if len(strengths) == 0:
        raise ConfigError("apply_direction needs at least one strength")
    inputs = state_inputs(generator, state, source=source)
    steps = torch.as_tensor([float(s) for s in strengths], device=direction.device)
    ws = inputs.ws + steps[:, None, None] * (mask * direction)  # [S, n_latent, style_dim]
    count = len(strengths)
    content = inputs.content.expand(count, -1, -1, -1) if inputs.content is not None else None
    return GeneratorInputs(ws, inputs.noise, content).render(generator).clamp(-1, 1)
