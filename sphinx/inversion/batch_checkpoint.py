"""Saving a batch's optimization while it runs, so that a killed run loses steps, not a batch.

:func:`sphinx.inversion.invert` calls a :class:`BatchCheckpoint` after every step. Every
``every`` steps, and at once when a stop is requested (SIGTERM, SIGINT), it writes the per-image
parameters, the Adam moments, the position (stage, step) and the loop's own records (loss history,
failed images) atomically to one file. Every random draw is seeded from (seed, image id, step), so
a rerun that restores the file continues exactly where the saved run was: on CPU its results are
bit-identical to an uninterrupted run's. The file is read with ``weights_only=True``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from sphinx.errors import CheckpointError, RunInterrupted
from sphinx.utils.files import atomic_open
from sphinx.utils.untrusted_files import load_torch_file

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "sphinx.batch_checkpoint/1"
__all__ = ["BatchCheckpoint", "LoopPosition", "RunInterrupted"]


@dataclass(frozen=True)
class LoopPosition:
    """Where a restored batch continues.

    Attributes:
        stage: index of the stage in flight.
        step: steps of that stage already done.
        global_step: steps done over all stages.
        optimizer: the stage's Adam ``state_dict`` (moments and step counts).
        records: the loop's own per-step records, as given to :meth:`BatchCheckpoint.after_step`.
    """

    stage: int
    step: int
    global_step: int
    optimizer: dict
    records: dict


class BatchCheckpoint:
    """One batch's in-flight state in one file.

    Args:
        path: the file (its folder is created when first saved).
        every: save every this many steps; 0 saves only when a stop is requested.
        stop_requested: returns the name of a signal that asked to stop, or None.
    """

    def __init__(
        self, path: str | os.PathLike, *, every: int = 0, stop_requested: Callable[[], str | None] = lambda: None
    ) -> None:
        if every < 0:
            raise ValueError(f"checkpoint every must be non-negative, got {every}")
        self.path = Path(path)
        self.every = every
        self.stop_requested = stop_requested

    def restore(self, identity: dict, params: Sequence[torch.Tensor]) -> LoopPosition | None:
        """Load the saved state into ``params`` (in place) if it belongs to this very batch.

        Args:
            identity: what must match: image ids, method, its config, seed.
            params: every optimized tensor of the batch, in the loop's order.

        Returns:
            Where to continue, or None to start from scratch (no file, or another batch's).
        """
        if not self.path.is_file():
            return None
        try:
            payload = self._read(identity, params)
        except CheckpointError as refused:
            # Our own file, damaged or tampered with: set aside unread beyond the refusal, never lost.
            kept = self.path.with_name(f"{self.path.name}.refused")
            os.replace(self.path, kept)
            log.warning("%s; set aside as %s, the batch starts from scratch", refused, kept.name)
            return None
        if payload is None:
            log.warning("%s belongs to another batch or configuration; starting the batch from scratch", self.path)
            return None
        with torch.no_grad():
            for target, value in zip(params, payload["params"]):
                target.copy_(value)
        log.info("batch %s resumes at step %d from %s", identity["ids"], payload["global_step"], self.path)
        return LoopPosition(
            stage=payload["stage"],
            step=payload["step"],
            global_step=payload["global_step"],
            optimizer=payload["optimizer"],
            records=payload["records"],
        )

    def _read(self, identity: dict, params: Sequence[torch.Tensor]) -> dict | None:
        """The file's payload, checked field by field against what :meth:`after_step` writes; None
        when it is another batch's."""
        payload = load_torch_file(self.path, what="batch checkpoint", remedy="it cannot be resumed from")
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{self.path}: not a sphinx batch checkpoint")
        counters = [payload.get(name) for name in ("stage", "step", "global_step")]
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counters):
            raise CheckpointError(f"{self.path}: its stage and step counters are not non-negative integers")
        if not all(isinstance(payload.get(name), dict) for name in ("identity", "optimizer", "records")):
            raise CheckpointError(f"{self.path}: lacks its identity, optimizer or records")
        if payload["identity"] != identity:
            return None
        saved = payload.get("params")
        if not (
            isinstance(saved, list)
            and len(saved) == len(params)
            and all(isinstance(s, torch.Tensor) and s.shape == p.shape for s, p in zip(saved, params))
        ):
            raise CheckpointError(f"{self.path}: its tensors do not fit this batch")
        return payload

    def after_step(
        self,
        identity: dict,
        *,
        stage: int,
        step: int,
        global_step: int,
        total_steps: int,
        params: Sequence[torch.Tensor],
        optimizer: torch.optim.Optimizer,
        records: dict,
    ) -> None:
        """Save when due; after a requested stop, save and raise :class:`RunInterrupted`.

        Args:
            identity: as for :meth:`restore`.
            stage, step, global_step: the position after the step just taken.
            total_steps: steps of all stages (nothing is saved after the last one).
            params: every optimized tensor of the batch.
            optimizer: the stage's optimizer.
            records: the loop's per-step records (tensors, lists of tensors, strings).
        """
        stop = self.stop_requested()
        due = self.every > 0 and global_step % self.every == 0 and global_step < total_steps
        if not (stop or due):
            return
        payload = {
            "format": CHECKPOINT_FORMAT,
            "identity": identity,
            "stage": stage,
            "step": step,
            "global_step": global_step,
            "params": [p.detach() for p in params],
            "optimizer": optimizer.state_dict(),
            "records": records,
        }
        with atomic_open(self.path) as stream:
            torch.save(payload, stream)
        if stop:
            raise RunInterrupted(stop, self.path)

    def discard(self) -> None:
        """Delete the file once the batch's results are written."""
        self.path.unlink(missing_ok=True)
