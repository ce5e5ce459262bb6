"""A saved inversion: one image's optimized tensors, enough to re-render and edit it later.

Saved with ``torch.save`` as plain tensors, strings and numbers, so ``load_state`` reads it with
``weights_only=True``; it never executes anything from the file.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from sphinx.errors import CheckpointError, ConfigError
from sphinx.generators.loading import describe
from sphinx.generators.stylegan2 import Generator
from sphinx.inversion.methods import MethodConfig, method_config
from sphinx.utils.files import atomic_open
from sphinx.utils.untrusted_files import load_torch_file

STATE_FORMAT = "sphinx.inversion_state/1"


@dataclass(frozen=True)
class InversionState:
    """One image's inversion.

    Attributes:
        method: registered method name (e.g. ``sphinx``, ``sphinx_ps``, ``w``, ``pti``).
        image_id: the image's id (seeds were derived from it).
        seed: the run seed.
        config: the method's hyperparameters.
        generator: one-line description of the generator it was made with.
        tensors: the method's per-image tensors (heads, latents, noise, fixed draws, deltas).
    """

    method: str
    image_id: str
    seed: int
    config: dict
    generator: str
    tensors: dict[str, torch.Tensor]


def save_state(state: InversionState, path: str | os.PathLike) -> Path:
    """Write a state atomically (temp file, then rename); returns the path."""
    path = Path(path)
    payload = {"format": STATE_FORMAT, **dataclasses.asdict(state)}
    payload["tensors"] = {k: v.detach().cpu() for k, v in state.tensors.items()}
    with atomic_open(path) as stream:
        torch.save(payload, stream)
    return path


def load_state(path: str | os.PathLike) -> InversionState:
    """Read a state written by :func:`save_state`."""
    path = Path(path)
    payload = load_torch_file(path, what="inversion state", remedy="re-run the inversion to recreate it")
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not a sphinx inversion state (expected format {STATE_FORMAT})")
    fields = [f.name for f in dataclasses.fields(InversionState)]
    missing = [name for name in fields if name not in payload]
    if missing:
        raise CheckpointError(f"{path}: inversion state lacks {', '.join(missing)}; re-run the inversion")
    state = InversionState(**{name: payload[name] for name in fields})
    problem = _type_problem(state)
    if problem:
        raise CheckpointError(f"{path}: malformed inversion state ({problem}); re-run the inversion")
    try:
        state_method(state)
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
    return state


def _type_problem(state: InversionState) -> str | None:
    """What is wrong with the types of a loaded state's fields, or None."""
    if not all(isinstance(v, str) for v in (state.method, state.image_id, state.generator)):
        return "method, image_id and generator must be strings"
    if isinstance(state.seed, bool) or not isinstance(state.seed, int):
        return f"seed must be an integer, got {type(state.seed).__name__}"
    for name, table in (("config", state.config), ("tensors", state.tensors)):
        if not isinstance(table, dict) or not all(isinstance(k, str) for k in table):
            return f"{name} must be a dict with string keys"
    if not all(isinstance(v, torch.Tensor) for v in state.tensors.values()):
        return "tensors must all be tensors"
    return None


def state_method(state: InversionState) -> MethodConfig:
    """The method config a state was made with (its name and recorded hyperparameters)."""
    try:
        return method_config(state.method, **state.config)
    except ConfigError as error:
        raise CheckpointError(f"inversion state of image {state.image_id}: {error}; re-run the inversion") from None


def check_state_generator(
    state: InversionState, generator: Generator, *, source: str | os.PathLike | None = None
) -> None:
    """Refuse a state made with a generator of another architecture, in one line."""
    expected = describe(generator)
    if state.generator != expected:
        where = f"{source}: " if source is not None else f"inversion state of image {state.image_id}: "
        raise CheckpointError(
            f"{where}made with another generator ({state.generator}), not this one ({expected}); "
            "use it with the generator it was inverted with"
        )


def render_state(generator: Generator, state: InversionState) -> torch.Tensor:
    """Re-render a saved inversion, ``[1, 3, H, W]`` in [-1, 1], with the generator it was made with."""
    config = state_method(state)
    device = generator.input.input.device
    tensors = {k: v.to(device) for k, v in state.tensors.items()}
    try:
        return config.implementation.render_state(generator, tensors, config).clamp(-1, 1)
    except (KeyError, IndexError, RuntimeError, ValueError) as mismatch:
        reason = " ".join(str(mismatch).split())[:160]
        raise CheckpointError(
            f"inversion state of image {state.image_id}: its tensors do not fit this generator "
            f"({describe(generator)}; {reason}); render it with the generator it was made "
            "with"
        ) from None
