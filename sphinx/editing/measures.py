"""How good an edit is: PSNR of attribute walks against their transformed targets, and the
endpoint error and evenness of a morph."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sphinx.editing.attribute import AttributeEdit, render_attribute
from sphinx.editing.transforms import Transform
from sphinx.generators.stylegan2 import Generator
from sphinx.inversion.state import InversionState
from sphinx.metrics.image_quality import psnr


@torch.no_grad()
def attribute_measures(
    generator: Generator,
    state: InversionState,
    target: torch.Tensor,
    transform: Transform,
    *,
    held_out: Sequence[float] = (),
) -> dict[str, float]:
    """PSNR of the walk against T(x, a) at the learned and at held-out factors.

    Args:
        generator: the generator the state was made with.
        state: a state written by :func:`sphinx.editing.learn_attribute`.
        target: the clean image x, ``[3, H, W]`` in [-1, 1].
        transform: the transform the attribute was learned for.
        held_out: factors not trained on; each is rendered at its interpolated alpha.

    Returns:
        ``psnr@<a>`` for each learned factor a (the frame at alpha_k against T(x, a_k)), their
        mean ``psnr_learned``; for each held-out factor h, ``psnr_heldout@<h>`` (the frame at
        alpha(h) against T(x, h)) and ``psnr_identity@<h>`` (the unedited frame, alpha = 0,
        against T(x, h)); and their means ``psnr_heldout`` and ``psnr_identity``.
    """
    edit = AttributeEdit.of(state)
    factors = [float(f) for f in edit.factors]
    held_out = [float(h) for h in held_out]
    alphas = [float(a) for a in edit.alphas] + [edit.alpha_at(h) for h in held_out]
    frames = render_attribute(generator, state, alphas)  # [K + H, 3, H, W]
    x = target.to(frames)[None]
    references = torch.cat([transform(x, f) for f in factors + held_out])
    scores = psnr(frames, references).tolist()
    measures = {f"psnr@{f:g}": s for f, s in zip(factors, scores)}
    measures["psnr_learned"] = sum(scores[: len(factors)]) / len(factors)
    if held_out:
        identity = psnr(frames[:1].expand(len(held_out), -1, -1, -1), references[len(factors) :]).tolist()
        for h, edited, plain in zip(held_out, scores[len(factors) :], identity):
            measures[f"psnr_heldout@{h:g}"] = edited
            measures[f"psnr_identity@{h:g}"] = plain
        measures["psnr_heldout"] = sum(scores[len(factors) :]) / len(held_out)
        measures["psnr_identity"] = sum(identity) / len(held_out)
    return measures


def morph_measures(frames: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> dict[str, float]:
    """Endpoint error and smoothness of a morph.

    Args:
        frames: ``[F, 3, H, W]``.
        first, second: the two states' own renders, ``[1, 3, H, W]``.

    Returns:
        ``endpoint_error``: the largest absolute difference of the end frames from the states'
        renders; ``step_mean``: mean absolute change between consecutive frames (in [-1, 1]
        units); ``smoothness``: the largest frame-to-frame change over the mean one (1 = the
        change is spread evenly, larger = a jump).
    """
    endpoint = max(float((frames[0] - first[0]).abs().max()), float((frames[-1] - second[0]).abs().max()))
    steps = (frames[1:] - frames[:-1]).abs().flatten(1).mean(dim=1)  # [F - 1]
    mean = float(steps.mean())
    return {"endpoint_error": endpoint, "step_mean": mean, "smoothness": float(steps.max()) / mean if mean > 0 else 1.0}
