"""Morphing between two saved inversions of the same generator."""

from __future__ import annotations

import os

import torch

from sphinx.editing.latents import state_inputs
from sphinx.errors import ConfigError
from sphinx.generators.stylegan2 import Generator
from sphinx.inversion.methods.base import GeneratorInputs
from sphinx.inversion.state import InversionState


@torch.no_grad()
def morph(
    generator: Generator,
    first: InversionState,
    second: InversionState,
    *,
    frames: int = 8,
    sources: tuple[str | os.PathLike, str | os.PathLike] | None = None,
) -> torch.Tensor:
    """Frames that interpolate two inversions linearly.

    W+ (for SPHInX the style head's output at the state's fixed draw), the 4x4 input (the
    content head's output, or the learned constant) and every noise map move together from the
    first state's value to the second's; the end frames re-render the two states.

    Args:
        generator: the generator both states were made with (checked).
        first, second: saved inversions of editable methods (sphinx and variants, w, wplus,
            wplus_noise); they may come from different methods.
        frames: number of frames, at least 2.
        sources: the states' files, named in errors.

    Returns:
        ``[frames, 3, H, W]`` in [-1, 1].
    """
    if frames < 2:
        raise ConfigError(f"a morph needs at least 2 frames, got {frames}")
    sources = sources or (None, None)
    start = state_inputs(generator, first, source=sources[0], explicit=True)
    end = state_inputs(generator, second, source=sources[1], explicit=True)
    weights = torch.linspace(0, 1, frames, device=start.ws.device)
    # torch.lerp is exact at both ends (weight 0 gives start, weight 1 gives end).
    between = lambda a, b: torch.lerp(
        a.expand(frames, *a.shape[1:]), b.expand(frames, *b.shape[1:]), weights.view(frames, *([1] * (a.ndim - 1)))
    )
    inputs = GeneratorInputs(
        between(start.ws, end.ws),
        [between(a, b) for a, b in zip(start.noise, end.noise)],
        between(start.content, end.content),
    )
    return inputs.render(generator).clamp(-1, 1)
