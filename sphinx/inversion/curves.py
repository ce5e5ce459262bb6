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

    def for_image(self, index: int, *, share: int = 1) -> dict[str, list]:
        """One image's curve as plain lists (for JSON): ``step``, ``seconds`` and each metric.

        Args:
            index: the image's place in the batch.
            share: how many images shared the batch's seconds (each is given its share).
        """
        curve: dict[str, list] = {
            "step": list(self.steps),
            "seconds": [round(round(s, 4) / share, 4) for s in self.seconds],
        }
        for name, values in self.metrics.items():
            curve[name] = [None if not math.isfinite(v) else round(v, 6) for v in values[:, index].tolist()]
        return curve


class CurveRecorder:
    """Scores images against the clean targets at chosen step counts.

    Nothing here makes the host wait for a GPU: scores stay on the device and the clock is a
    pair of CUDA events per point, read when the curve is asked for.

    Args:
        clean: clean targets ``[B, 3, H, W]`` in [-1, 1].
        steps: the step counts to record at (see :func:`log_spaced_steps`).
        lpips: a perceptual distance ``(x, y) -> [B]``, or None for PSNR and SSIM only.
    """

    def __init__(
        self,
        clean: torch.Tensor,
        *,
        steps: tuple[int, ...],
        lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
    ) -> None:
        self.clean = clean
        self.clock = _EventClock(clean.device) if clean.device.type == "cuda" else _HostClock(time.process_time)
        self.wanted = frozenset(steps)
        self.lpips = lpips
        self.steps: list[int] = []
        self.values: dict[str, list[torch.Tensor]] = {"psnr": [], "ssim": []}
        if lpips is not None:
            self.values["lpips"] = []

    def wants(self, step: int) -> bool:
        return step in self.wanted and step not in self.steps[-1:]

    @torch.no_grad()
    def record(self, step: int, images: torch.Tensor, failed: torch.Tensor) -> None:
        """Score ``images`` (``[B, 3, H, W]``) as the state after ``step`` optimizer steps."""
        self.clock.begin_point()
        self.steps.append(step)
        images = images.detach().clamp(-1, 1)
        safe = torch.where(failed[:, None, None, None], self.clean, images)  # failed rows may be NaN
        scores = {"psnr": psnr(safe, self.clean), "ssim": ssim(safe, self.clean)}
        if self.lpips is not None:
            scores["lpips"] = self.lpips(pool_for_lpips(safe), pool_for_lpips(self.clean)).flatten()
        for name, values in scores.items():
            self.values[name].append(torch.where(failed, torch.full_like(values, math.nan), values.float()))
        self.clock.end_point()

    def discard_after(self, step: int) -> None:
        """Forget the points recorded after ``step`` (a stop found late)."""
        keep = sum(s <= step for s in self.steps)
        self.steps = self.steps[:keep]
        self.values = {name: values[:keep] for name, values in self.values.items()}
        self.clock.keep(keep)

    def records(self) -> dict:
        """What a batch checkpoint saves, so that a resumed batch keeps the points it had."""
        return {
            "curve": {
                "steps": list(self.steps),
                "seconds": self.clock.seconds(),
                "values": {name: [v.cpu() for v in values] for name, values in self.values.items()},
            }
        }

    def restore(self, records: dict) -> None:
        """Continue from :meth:`records`; the clock resumes at the last saved point's time."""
        if "curve" not in records:
            return
        state = records["curve"]
        self.steps = list(state["steps"])
        self.values = {name: [v.to(self.clean.device) for v in values] for name, values in state["values"].items()}
        self.clock.restore(list(state["seconds"]))

    def curve(self) -> QualityCurve:
        return QualityCurve(
            tuple(self.steps),
            tuple(self.clock.seconds()),
            {name: torch.stack(values).cpu() for name, values in self.values.items()},
        )


class _HostClock:
    """Seconds of optimization at each point: the clock's time less the time spent scoring."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.points: list[float] = []
        self.started = clock()
        self.overhead = 0.0
        self.began = 0.0

    def begin_point(self) -> None:
        self.began = self.clock()
        self.points.append(self.began - self.started - self.overhead)

    def end_point(self) -> None:
        self.overhead += self.clock() - self.began

    def keep(self, count: int) -> None:
        self.points = self.points[:count]

    def seconds(self) -> list[float]:
        return list(self.points)

    def restore(self, seconds: list[float]) -> None:
        self.points = seconds
        self.started = self.clock() - (seconds[-1] if seconds else 0.0)
        self.overhead = 0.0


class _EventClock:
    """As :class:`_HostClock`, on a GPU's own timeline: CUDA events, read only in :meth:`seconds`."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.start = self._event()
        self.earlier: list[float] = []  # seconds restored from a checkpoint
        self.marks: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []

    def _event(self) -> torch.cuda.Event:
        event = torch.cuda.Event(enable_timing=True)
        event.record(torch.cuda.current_stream(self.device))
        return event

    def begin_point(self) -> None:
        self.marks.append((self._event(), None))

    def end_point(self) -> None:
        self.marks[-1] = (self.marks[-1][0], self._event())

    def keep(self, count: int) -> None:
        kept = max(0, count - len(self.earlier))
        self.earlier, self.marks = self.earlier[:count], self.marks[:kept]

    def seconds(self) -> list[float]:
        if self.marks:
            self.marks[-1][-1].synchronize()
        offset = self.earlier[-1] if self.earlier else 0.0
        points, scoring = [], 0.0
        for began, ended in self.marks:
            points.append(offset + self.start.elapsed_time(began) / 1e3 - scoring)
            scoring += began.elapsed_time(ended) / 1e3
        return self.earlier + points

    def restore(self, seconds: list[float]) -> None:
        self.earlier, self.marks, self.start = seconds, [], self._event()
