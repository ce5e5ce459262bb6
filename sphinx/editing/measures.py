"""How good an edit is: PSNR of attribute walks against their transformed targets, the amount of
the transform a walk achieves, what it changes that the transform would not and flags for walks that
miss (their comparison with a control run: :mod:`sphinx.rundir.control`), and the endpoint error and evenness of a morph."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sphinx.editing.attribute import AttributeEdit, render_attribute
from sphinx.editing.transforms import Transform
from sphinx.generators.stylegan2 import Generator
from sphinx.inversion.state import InversionState
from sphinx.metrics.image_quality import psnr, to_unit_range

# Candidate factors of the achieved-amount search, over twice the largest asked change each side.
ACHIEVED_SEARCH_POINTS = 801
# Rec. 601 luma weights: the "structure" a photometric transform should keep.
_LUMA = (0.299, 0.587, 0.114)
# A gap this much below the margin is a missed hinge (Adam leaves gaps a hair either side of it).
MARGIN_SLACK = 0.01


@torch.no_grad()
def attribute_measures(
    generator: Generator,
    state: InversionState,
    target: torch.Tensor,
    transform: Transform,
    *,
    held_out: Sequence[float] = (),
) -> dict[str, float]:
    """How well a learned walk reproduces its transform, at the learned and at held-out factors.

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
        against T(x, h)), and their means ``psnr_heldout`` and ``psnr_identity``. For every
        factor but the identity, ``achieved@<a>``: the amount of the transform the frame shows
        (:func:`achieved_amount`), their mean distance from the asked factors
        ``achieved_error``, and the mean of :func:`unchanged_measure` (``intensity_change`` or
        ``structure``).
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
    asked = factors[1:] + held_out
    edited = torch.cat([frames[1 : len(factors)], frames[len(factors) :]])  # [len(asked), 3, H, W]
    achieved = achieved_amount(transform, frames[:1], edited, asked=asked).tolist()
    measures.update({f"achieved@{a:g}": t for a, t in zip(asked, achieved)})
    measures["achieved_error"] = sum(abs(t - a) for a, t in zip(asked, achieved)) / len(asked)
    name, kept = unchanged_measure(transform, frames[:1], edited, asked=asked)
    measures[name] = float(kept.mean())
    return measures


@torch.no_grad()
def achieved_amount(
    transform: Transform, reconstruction: torch.Tensor, frames: torch.Tensor, *, asked: Sequence[float]
) -> torch.Tensor:
    """The factor t at which T(reconstruction, t) best matches each edited frame.

    The walk is compared with the transform of its own unedited frame, not of the photo, so the
    measure does not depend on how well the photo was reconstructed. The search runs over
    :data:`ACHIEVED_SEARCH_POINTS` factors within the transform's bounds, from the identity to
    twice the largest asked change on either side; geometric transforms are compared only where
    the candidate shows the image, not its fill.

    Args:
        transform: the transform.
        reconstruction: the unedited frame (alpha = 0), ``[1, 3, H, W]`` in [-1, 1].
        frames: walk frames ``[F, 3, H, W]``.
        asked: the factors the frames were rendered for (they set the search window).

    Returns:
        ``[F]`` float64 factors.
    """
    low, high = transform.bounds
    span = 2 * max(abs(a - transform.identity) for a in asked)
    half = ACHIEVED_SEARCH_POINTS // 2 + 1  # each side holds the identity itself: no edit reads exactly no change
    below = torch.linspace(max(low, transform.identity - span), transform.identity, half, dtype=torch.float64)
    above = torch.linspace(transform.identity, min(high, transform.identity + span), half, dtype=torch.float64)
    grid = torch.cat([below, above[1:]])
    frames = frames.float()
    errors = []
    for chunk in grid.split(64):
        sources = reconstruction.float().expand(len(chunk), -1, -1, -1)
        candidates = transform(sources, chunk.float().to(frames.device))  # [S, 3, H, W]
        covered = transform.covered(sources, chunk.float().to(frames.device)).float()  # [S, 1, H, W]
        squared = (candidates[None] - frames[:, None]).square() * covered[None]  # [F, S, 3, H, W]
        errors.append(squared.sum(dim=(2, 3, 4)) / (3 * covered.sum(dim=(1, 2, 3))).clamp(min=1)[None])
    # rounded, so that an exact identity reads 0 rather than the grid's -2e-15
    return grid[torch.cat(errors, dim=1).argmin(dim=1).cpu()].round(decimals=9) + 0.0  # + 0.0: no "-0"


@torch.no_grad()
def unchanged_measure(
    transform: Transform, reconstruction: torch.Tensor, frames: torch.Tensor, *, asked: Sequence[float]
) -> tuple[str, torch.Tensor]:
    """What the transform should leave alone, compared between each frame and T(reconstruction, a).

    A geometric transform moves pixels but keeps their colours: ``intensity_change`` is the
    absolute difference of mean intensity ([0, 1] units; 0 is best). A photometric one changes
    values but keeps the picture's structure: ``structure`` is the correlation of luma (1 is best).

    Args:
        transform: the transform.
        reconstruction: the unedited frame, ``[1, 3, H, W]``.
        frames: walk frames ``[F, 3, H, W]``, one per asked factor.
        asked: the factors the frames stand for.

    Returns:
        The measure's name and its value per frame, ``[F]``.
    """
    expected = torch.cat([transform(reconstruction.float(), float(a)) for a in asked])  # [F, 3, H, W]
    edited, expected = to_unit_range(frames), to_unit_range(expected)
    if transform.geometric:
        return "intensity_change", (edited.mean(dim=(1, 2, 3)) - expected.mean(dim=(1, 2, 3))).abs()
    weights = torch.tensor(_LUMA, device=edited.device)[None, :, None, None]
    luma = [(images * weights).sum(dim=1).flatten(1) for images in (edited, expected)]  # [F, H * W] each
    centred = [values - values.mean(dim=1, keepdim=True) for values in luma]
    norms = (centred[0].norm(dim=1) * centred[1].norm(dim=1)).clamp(min=1e-12)
    return "structure", (centred[0] * centred[1]).sum(dim=1) / norms


def attribute_flags(
    alphas: Sequence[float], *, margin: float, achieved: dict[float, float], tolerance: float
) -> list[str]:
    """Why a learned walk should not be trusted: none when the hinge and every asked amount were met.

    Args:
        alphas: the learned alphas, alpha_0 = 0 first.
        margin: the hinge margin the gaps were trained to reach.
        achieved: the achieved amount for each asked factor.
        tolerance: the largest miss of an asked factor that still counts as met (its units).

    Returns:
        Flags: ``alphas_not_increasing``, ``alphas_below_margin`` and ``missed@<factor>``.
    """
    gaps = [b - a for a, b in zip(alphas, alphas[1:])]
    flags = []
    if any(gap <= 0 for gap in gaps):
        flags.append("alphas_not_increasing")
    elif any(gap < margin * (1 - MARGIN_SLACK) for gap in gaps):
        flags.append("alphas_below_margin")
    flags += [f"missed@{a:g}" for a, t in achieved.items() if abs(t - a) > tolerance]
    return flags


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
