"""Quality-versus-budget curves: each image's PSNR / SSIM (/ LPIPS) at log-spaced steps.

The curve answers how fast a method gets how good. It is recorded while the optimization
runs, at few enough steps (a handful per decade) that it costs next to nothing: where the
step's own image is what the method would report, that image is scored; otherwise (SPHInX's
random draw, the projector's jitter) the method renders its fixed final draw once more.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from sphinx.inversion.objective import pool_for_lpips
from sphinx.metrics.image_quality import psnr, ssim

POINTS_PER_DECADE = 4


def log_spaced_steps(total: int, *, per_decade: int = POINTS_PER_DECADE) -> tuple[int, ...]:
    """Step counts ``0, 1, 2, 3, 6, 10, 18, ...`` up to and including ``total``.

    Args:
        total: the last step count (the run's total steps).
        per_decade: points per factor of ten.

    Returns:
        Sorted, distinct step counts in ``[0, total]``.
    """
    steps = {0, total}
    exponent = 0
    while (step := round(10 ** (exponent / per_decade))) < total:
        steps.add(step)
        exponent += 1
    return tuple(sorted(steps))


@dataclass(frozen=True)
class QualityCurve:
    """Per-image quality of the reported image after a number of optimization steps.

    Attributes:
        steps: optimizer steps taken before each point, ``[P]``.
        seconds: compute time of the batch's optimization at each point (recording excluded),
            ``[P]``: the process's CPU seconds on a CPU, so that other load on a shared machine
            does not inflate it; wall seconds on a GPU.
        metrics: ``psnr``, ``ssim`` (and ``lpips`` when a perceptual network was available),
            each ``[P, B]``; NaN for an image that has failed by then.
    """

    steps: tuple[int, ...]
    seconds: tuple[float, ...]
    metrics: dict[str, torch.Tensor]

    def for_image(self, index: int) -> dict[str, list]:
        """One image's curve as plain lists (for JSON): ``step``, ``seconds`` and each metric."""
        curve: dict[str, list] = {"step": list(self.steps), "seconds": [round(s, 4) for s in self.seconds]}
        for name, values in self.metrics.items():
            curve[name] = [None if not math.isfinite(v) else round(v, 6) for v in values[:, index].tolist()]
        return curve


class CurveRecorder:
    """Scores images against the clean targets at chosen step counts.

    Args:
        clean: clean targets ``[B, 3, H, W]`` in [-1, 1].
        steps: the step counts to record at (see :func:`log_spaced_steps`).
        lpips: a perceptual distance ``(x, y) -> [B]``, or None for PSNR and SSIM only.
    """

    def __init__(self, clean: torch.Tensor, *, steps: tuple[int, ...],
                 lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None) -> None:
        self.clean = clean
        self.clock = time.process_time if clean.device.type == "cpu" else time.perf_counter
        self.wanted = frozenset(steps)
        self.lpips = lpips
        self.steps: list[int] = []
        self.seconds: list[float] = []
        self.values: dict[str, list[torch.Tensor]] = {"psnr": [], "ssim": []}
        if lpips is not None:
            self.values["lpips"] = []
        self.started = self.clock()
        self.overhead = 0.0

    def wants(self, step: int) -> bool:
        return step in self.wanted and step not in self.steps[-1:]

    @torch.no_grad()
    def record(self, step: int, images: torch.Tensor, failed: torch.Tensor) -> None:
        """Score ``images`` (``[B, 3, H, W]``) as the state after ``step`` optimizer steps."""
        if images.device.type == "cuda":
            torch.cuda.synchronize(images.device)  # the clock reads once the step's work is done
        began = self.clock()
        self.steps.append(step)
        self.seconds.append(began - self.started - self.overhead)
        images = images.detach().clamp(-1, 1)
        safe = torch.where(failed[:, None, None, None], self.clean, images)  # failed rows may be NaN
        scores = {"psnr": psnr(safe, self.clean), "ssim": ssim(safe, self.clean)}
        if self.lpips is not None:
            scores["lpips"] = self.lpips(pool_for_lpips(safe), pool_for_lpips(self.clean)).flatten()
        for name, values in scores.items():
            self.values[name].append(torch.where(failed, torch.full_like(values, math.nan), values.float()).cpu())
        self.overhead += self.clock() - began

    def state(self) -> dict:
        """What a batch checkpoint saves, so that a resumed batch keeps the points it had."""
        return {"steps": list(self.steps), "seconds": list(self.seconds),
                "values": {name: list(values) for name, values in self.values.items()}}

    def restore(self, state: dict) -> None:
        """Continue from :meth:`state`; the clock resumes at the last saved point's time."""
        self.steps, self.seconds = list(state["steps"]), list(state["seconds"])
        self.values = {name: list(values) for name, values in state["values"].items()}
        self.started = self.clock() - (self.seconds[-1] if self.seconds else 0.0)
        self.overhead = 0.0

    def curve(self) -> QualityCurve:
        return QualityCurve(tuple(self.steps), tuple(self.seconds),
                            {name: torch.stack(values) for name, values in self.values.items()})
