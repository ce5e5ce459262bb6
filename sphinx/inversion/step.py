"""The pieces of one optimization step, and the records :func:`sphinx.inversion.invert` keeps of a batch.

A step: set each group's learning rate (:func:`schedule`), weigh the loss terms
(:func:`weighted_loss`), descend on the healthy images (:func:`descend`). Around it the loop
keeps :class:`LoopRecord` s: the loss history, the failed images, PTI's early stop and the
quality curve. They share one small protocol, so that the in-batch checkpoint saves them, a
resumed batch restores them, and a stop found late cuts them back, all in the same way.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Protocol

import torch

from sphinx.inversion.methods import ParamGroup, Stage
from sphinx.inversion.schedules import projector_lr_factor

log = logging.getLogger(__name__)

ADAM_BETAS = (0.9, 0.999)


class LoopRecord(Protocol):
    """What the loop keeps of a batch besides its parameters."""

    def records(self) -> dict:
        """Its entries of the in-batch checkpoint (tensors, lists of tensors, strings)."""

    def restore(self, records: dict) -> None:
        """Continue from a checkpoint's entries (those of :meth:`records`, when present)."""

    def discard_after(self, step: int) -> None:
        """Forget what was recorded after global ``step``: a stop found late happened there."""


def stage_optimizer(
    groups: Sequence[ParamGroup], all_params: Sequence[torch.Tensor], *, fused: bool = False
) -> torch.optim.Adam:
    """Adam over a stage's groups; only their tensors collect gradients (``fused``: one kernel)."""
    stage_params = {id(p) for g in groups for p in g.params}
    for p in all_params:
        p.requires_grad_(id(p) in stage_params)
    return torch.optim.Adam(
        [{"params": list(g.params), "lr": g.lr} for g in groups], betas=ADAM_BETAS, **({"fused": True} if fused else {})
    )


def schedule(optimizer: torch.optim.Adam, stage: Stage, progress: float) -> None:
    """Set each group's lr for this point of the stage (the projector ramp on scheduled groups)."""
    factor = projector_lr_factor(progress, rampup=stage.rampup, rampdown=stage.rampdown)
    for group, spec in zip(optimizer.param_groups, stage.groups):
        group["lr"] = spec.lr * (factor if spec.scheduled else 1.0)


def weighted_loss(stage: Stage, terms: dict[str, torch.Tensor], penalties: dict[str, torch.Tensor]) -> torch.Tensor:
    """The stage's weighted reconstruction terms plus each per-image penalty, in order, ``[B]``; the
    penalties are recorded in ``terms`` under their names."""
    loss = stage.mse_weight * terms["mse"]
    if "lpips" in terms:
        loss = loss + stage.lpips_weight * terms["lpips"]
    for name, penalty in penalties.items():
        terms[name] = penalty
        loss = loss + penalty
    return loss


def descend(
    optimizer: torch.optim.Adam, loss: torch.Tensor, failed: torch.Tensor, params: Sequence[torch.Tensor]
) -> None:
    """One Adam step on the sum of the healthy images' losses."""
    optimizer.zero_grad(set_to_none=True)
    # A failed image's (NaN) term is zeroed rather than masked out, so that no shape depends on data.
    loss.masked_fill(failed, 0).sum().backward()
    _zero_failed_gradients(params, failed)
    optimizer.step()


def _zero_failed_gradients(params: Sequence[torch.Tensor], failed: torch.Tensor) -> None:
    """A failed image's gradients may be NaN; keep them out of its (unused) Adam state."""
    masks: dict[int, torch.Tensor] = {}
    for p in params:
        if p.grad is not None and p.grad.shape[0] == failed.shape[0]:
            if p.grad.ndim not in masks:
                masks[p.grad.ndim] = failed.view(-1, *(1,) * (p.grad.ndim - 1))
            p.grad.masked_fill_(masks[p.grad.ndim], 0)


def step_labels(stages: Sequence[Stage]) -> Callable[[int], str]:
    """``global step -> "step 5 (sphinx)"``: a step and the stage it belongs to."""

    def label(step: int) -> str:
        end = 0
        for stage in stages:
            end += stage.steps
            if step < end:
                return f"step {step} ({stage.name})"
        return f"step {step}"

    return label


class LossHistory:
    """Each step's per-image total loss, kept on the device: ``[B]`` per step."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.rows: list[torch.Tensor] = []
        self.steps: list[int] = []

    def append(self, step: int, loss: torch.Tensor) -> None:
        self.rows.append(loss.detach())
        self.steps.append(step)

    def stacked(self, batch_size: int) -> torch.Tensor:
        """``[steps run, B]``."""
        return torch.stack(self.rows) if self.rows else torch.empty(0, batch_size)

    def records(self) -> dict:
        return {"history": self.rows}

    def restore(self, records: dict) -> None:
        self.rows = [row.to(self.device) for row in records["history"]]
        self.steps = list(range(len(self.rows)))  # saved before any stop cut a stage short

    def discard_after(self, step: int) -> None:
        keep = sum(s <= step for s in self.steps)
        del self.rows[keep:], self.steps[keep:]


class Failures:
    """Which images of a batch have failed, kept on the device: marking them never waits.

    The host learns of a failure only in :meth:`settle`, which writes its message (with the
    step it happened at) and logs it.

    Args:
        bad_target: ``[B]`` bool, images whose target holds NaN or Inf: failed from the start.
        ids: image ids, for the log.
        describe_step: ``global step -> "step 5 (sphinx)"``.
    """

    def __init__(self, bad_target: torch.Tensor, ids: Sequence[str], *, describe_step: Callable[[int], str]) -> None:
        self.failed = bad_target.clone()
        self.failed_at = torch.full(bad_target.shape, -1, dtype=torch.long, device=bad_target.device)  # [B]
        self.messages = ["target contains NaN or Inf" if bad else "" for bad in bad_target.tolist()]
        self.ids, self.describe_step = list(ids), describe_step

    def observe(self, loss: torch.Tensor, step: int) -> torch.Tensor:
        """Mark the images whose loss ``[B]`` is not finite as failed at ``step``; returns the
        loss with every failed image's entry NaN."""
        newly_failed = ~torch.isfinite(loss) & ~self.failed
        self.failed_at.masked_fill_(newly_failed, step)
        self.failed |= newly_failed
        return loss.masked_fill(self.failed, math.nan)

    def settle(self) -> bool:
        """Read the flags on the host and write each new failure's message; whether every image has failed."""
        for index, step in enumerate(self.failed_at.tolist()):
            if step >= 0 and not self.messages[index]:
                self.messages[index] = f"non-finite loss at {self.describe_step(step)}"
                log.warning("image %s failed: %s", self.ids[index], self.messages[index])
        return bool(self.failed.all())

    def halt_step(self, first_step: int) -> int | None:
        """Read on the host: the global step at which the last image failed, once all have (a batch
        restored with every image failed already: ``first_step``); None while one is healthy."""
        if not self.settle():
            return None
        last = int(self.failed_at.max())
        return last if last >= 0 else first_step

    def mark_unfinished(self, images: torch.Tensor) -> None:
        """Also fail the images whose result ``[B, ...]`` is not finite."""
        self.failed |= ~torch.isfinite(images).flatten(1).all(dim=1)
        for index in self.failed.nonzero().flatten().tolist():
            self.messages[index] = self.messages[index] or "non-finite reconstruction"

    def records(self) -> dict:
        return {"failed": self.failed, "failed_at": self.failed_at, "messages": self.messages}

    def restore(self, records: dict) -> None:
        self.failed = records["failed"].to(self.failed.device)
        self.messages = list(records["messages"])
        if "failed_at" in records:  # checkpoints written before it was kept settled every step
            self.failed_at = records["failed_at"].to(self.failed_at.device)

    def discard_after(self, step: int) -> None:
        """Failures stand: an image that failed before the stop failed."""


class EarlyStop:
    """A stage's stop once every healthy image's LPIPS is at most ``stage.lpips_stop`` (PTI).

    It is decided on the device at every step, before the step's descent, and the host reads it
    only now and then. Meanwhile, from the step where it was met, :meth:`hold` keeps the
    parameters where they were before that step's descent, so that the outcome is the same as
    stopping at once.

    Args:
        stage: the stage, with its ``lpips_stop`` and the tensors it optimizes.
        stage_start: the global step of the stage's first step.
        device: where the flags live.
    """

    def __init__(self, stage: Stage, *, stage_start: int, device: torch.device) -> None:
        self.threshold = stage.lpips_stop
        self.stage_start = stage_start
        self.params = [p for group in stage.groups for p in group.params]
        self.before = [torch.empty_like(p) for p in self.params]
        self.stopped = torch.zeros((), dtype=torch.bool, device=device)
        self.stopped_at = torch.full((), -1, dtype=torch.long, device=device)  # stage step; -1: not yet

    @torch.no_grad()
    def observe(self, lpips: torch.Tensor, failed: torch.Tensor, step: int) -> None:
        """Decide, from this step's LPIPS ``[B]``, whether the stage stops at stage ``step``."""
        met = torch.where(failed, True, lpips <= self.threshold).all()
        self.stopped_at.masked_fill_(met & ~self.stopped, step)
        self.stopped |= met
        torch._foreach_copy_(self.before, self.params)

    @torch.no_grad()
    def hold(self) -> None:
        """Once stopped, put the parameters back to their values before this step's descent."""
        # p * 1 + b * 0 and p * 0 + b * 1 are exact: the parameters are untouched until the stop.
        stopped = self.stopped.to(self.params[0].dtype)
        torch._foreach_mul_(self.params, 1 - stopped)
        torch._foreach_add_(self.params, torch._foreach_mul(self.before, stopped))

    def halt_step(self) -> int | None:
        """Read on the host: the global step at which the stop was met, or None."""
        step = int(self.stopped_at)
        return self.stage_start + step if step >= 0 else None

    def records(self) -> dict:
        return {"early_stop": {"stopped": self.stopped, "stopped_at": self.stopped_at}}

    def restore(self, records: dict) -> None:
        if "early_stop" in records:
            self.stopped = records["early_stop"]["stopped"].to(self.stopped.device)
            self.stopped_at = records["early_stop"]["stopped_at"].to(self.stopped_at.device)

    def discard_after(self, step: int) -> None:
        """The stop is what cut the stage short: nothing after it was recorded."""
