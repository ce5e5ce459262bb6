"""W+ edits of a method's generator inputs: row-normalized directions, shifts, saved states.

Every editable method renders ``G.synthesis`` of :class:`GeneratorInputs`; the functions here
move the W+ part of those inputs and render the result.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from sphinx.errors import CheckpointError, ConfigError
from sphinx.generators.stylegan2 import Generator
from sphinx.inversion.methods.base import GeneratorInputs
from sphinx.inversion.state import InversionState, check_state_generator, state_method

_RE_INVERT = "re-run the inversion that wrote it (sphinx.run with the same method and generator)"


def normalize_rows(direction: torch.Tensor) -> torch.Tensor:
    """Each W+ row of a direction scaled to unit L2 norm, as the authors' ``D / ||D||``.

    Args:
        direction: ``[..., n_latent, style_dim]``.

    Returns:
        Same shape; every ``[style_dim]`` row has norm 1.
    """
    return direction / direction.norm(dim=-1, keepdim=True)


def repeat_inputs(inputs: GeneratorInputs, ws: torch.Tensor) -> GeneratorInputs:
    """``inputs`` with W+ replaced by ``ws`` ``[B * K, n_latent, style_dim]`` (image-major).

    Each image's noise maps and 4x4 input are repeated for its K latents; maps shared by the
    whole batch (leading 1) stay shared.
    """
    batch = inputs.ws.shape[0]
    copies = ws.shape[0] // batch
    repeat = lambda t: t.repeat_interleave(copies, dim=0) if t.shape[0] == batch and copies > 1 else t
    noise = [repeat(n) for n in inputs.noise] if inputs.noise is not None else None
    content = repeat(inputs.content) if inputs.content is not None else None
    return GeneratorInputs(ws, noise, content)


def shifted_inputs(inputs: GeneratorInputs, direction: torch.Tensor, alphas: torch.Tensor) -> GeneratorInputs:
    """The inputs of ``G(w + alpha_k * D / ||D||_row)`` for every image and alpha, image-major.

    Args:
        inputs: a batch's inputs, W+ ``[B, n_latent, style_dim]``.
        direction: ``[B, n_latent, style_dim]`` (unnormalized).
        alphas: ``[B, K]``.

    Returns:
        Inputs of ``B * K`` images, image b's K shifts together.
    """
    ws = inputs.ws[:, None] + alphas[:, :, None, None] * normalize_rows(direction)[:, None]  # [B, K, L, d]
    return repeat_inputs(inputs, ws.flatten(0, 1))  # [B * K, L, d]


def render_shifted(
    generator: Generator, inputs: GeneratorInputs, direction: torch.Tensor, alphas: torch.Tensor
) -> torch.Tensor:
    """Render :func:`shifted_inputs`: ``[B, K, 3, H, W]``."""
    return shifted_inputs(inputs, direction, alphas).render(generator).unflatten(0, tuple(alphas.shape))


def state_inputs(
    generator: Generator, state: InversionState, *, source: str | os.PathLike | None = None, explicit: bool = False
) -> GeneratorInputs:
    """The generator inputs ``[1, ...]`` a saved state renders, on the generator's device.

    Args:
        generator: the generator the state was made with (checked).
        state: a saved inversion of an editable method.
        source: the state's file, named in errors.
        explicit: fill in the generator's stored noise and learned constant where the method
            used them, so that every field is a tensor (for interpolation).
    """
    check_state_generator(state, generator, source=source)
    config = state_method(state)
    if not config.implementation.latent_inputs:
        where = f"{source}: " if source is not None else ""
        raise ConfigError(
            f"{where}a method {state.method} state has no W+ input to edit; invert with sphinx, "
            "its variants, w, wplus or wplus_noise"
        )
    device = generator.input.input.device
    tensors = {k: v.to(device) for k, v in state.tensors.items()}
    where = f"{source}" if source is not None else f"inversion state of image {state.image_id}"
    try:
        with torch.no_grad():
            inputs = config.implementation.state_inputs(generator, tensors, config)
    except (KeyError, IndexError, RuntimeError, ValueError, TypeError) as mismatch:
        reason = " ".join(str(mismatch).split())[:160]
        raise CheckpointError(
            f"{where}: its tensors do not fit a {state.method} state ({reason}); {_RE_INVERT}"
        ) from None
    _check_state_inputs(inputs, generator, where=where)
    if not explicit:
        return inputs
    noise = inputs.noise if inputs.noise is not None else generator.stored_noise()
    content = inputs.content if inputs.content is not None else generator.input.input
    return GeneratorInputs(inputs.ws, [n.detach() for n in noise], content.detach())


def layer_mask(generator: Generator, layers: Sequence[int | None]) -> torch.Tensor:
    """``[n_latent, 1]`` mask of the W+ rows ``start <= row < stop`` (stop None: to the last)."""
    if len(layers) != 2:
        raise ConfigError(f"layers must be [start, stop], got {list(layers)}")
    start, stop = layers
    stop = generator.n_latent if stop is None else stop
    if not 0 <= start < stop <= generator.n_latent:
        raise ConfigError(
            f"layers must satisfy 0 <= start < stop <= {generator.n_latent} (this generator's W+ "
            f"rows), got [{start}, {stop}]"
        )
    mask = torch.zeros(generator.n_latent, 1)
    mask[start:stop] = 1
    return mask.to(generator.input.input.device)


def _check_state_inputs(inputs: GeneratorInputs, generator: Generator, *, where: str) -> None:
    """Refuse a state whose inputs the generator cannot render (a tampered or foreign file), in one line."""
    expected = [("W+ latents", inputs.ws, (1, generator.n_latent, generator.style_dim))]
    if inputs.noise is not None:
        if len(inputs.noise) != generator.num_noise_layers:
            raise CheckpointError(
                f"{where}: holds {len(inputs.noise)} noise maps, the generator has "
                f"{generator.num_noise_layers}; {_RE_INVERT}"
            )
        stored = generator.stored_noise()
        expected += [(f"noise map {i}", n, tuple(s.shape)) for i, (n, s) in enumerate(zip(inputs.noise, stored))]
    if inputs.content is not None:
        expected.append(("4x4 input", inputs.content, (1, *generator.input.input.shape[1:])))
    for name, tensor, shape in expected:
        if tuple(tensor.shape) != shape or not tensor.is_floating_point():
            raise CheckpointError(
                f"{where}: its {name} is {str(tensor.dtype).removeprefix('torch.')} {list(tensor.shape)}, "
                f"the generator needs floating point {list(shape)}; {_RE_INVERT}"
            )
        if not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{where}: its {name} holds NaN or infinite values; {_RE_INVERT}")
