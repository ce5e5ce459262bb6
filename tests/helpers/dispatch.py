"""Counting what an inversion step asks of the host: dispatched ops and host synchronisations.

On a GPU the step's time is bounded below by its kernel launches (every dispatched op is one or
more) and stalls at every host synchronisation, where Python waits for the device to drain. Both
can be counted on a CPU, where nothing is faster to run: :class:`StepDispatchCounter` is a
dispatch mode that buckets every aten op by inversion step, using ``invert``'s progress
callback as the step boundary.

    counter = StepDispatchCounter()
    with counter:
        invert(G, images, callback=counter.mark, ...)
    counter.steps  # one StepCount per step
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

# Ops whose result the host must wait for: a value read (item, bool(), float()) or an output
# whose shape depends on the data (nonzero, boolean-mask selection).
SYNCING_OPS = frozenset(
    {
        aten._local_scalar_dense.default,
        aten.nonzero.default,
        aten.nonzero.out,
        aten.masked_select.default,
        aten.unique_consecutive.default,
        aten._unique2.default,
    }
)
# torch.optim keeps Adam's step counter on the host unless capturable: reading it waits for nothing.
HOST_SIDE_CALLERS = ("torch/optim/",)


@dataclass
class StepCount:
    """What one step dispatched.

    Attributes:
        step: the step index reported by ``invert`` at the end of the step.
        ops: aten ops dispatched since the previous step's report.
        syncs: those of them that make the host wait for the device.
        sync_names: the syncing ops by name, for a readable failure.
    """

    step: int
    ops: int = 0
    syncs: int = 0
    sync_names: list[str] = field(default_factory=list)


def _is_boolean_index(func, args) -> bool:
    if func not in (aten.index.Tensor, aten.index_put.default, aten.index_put_.default):
        return False
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1] if i is not None)


def _called_from_host_side_code() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename.replace("\\", "/")
        if any(caller in name for caller in HOST_SIDE_CALLERS):
            return True
        frame = frame.f_back
    return False


class StepDispatchCounter(TorchDispatchMode):
    """Counts dispatched ops and host syncs per inversion step.

    Use as a context manager around ``invert`` and pass :meth:`mark` as its ``callback`` (or
    call it from yours): everything dispatched between two reports belongs to the later one's
    step, so a step's count covers its descent, its draws, its render and its loss. What runs
    after the last report (final render, scoring) is in :attr:`tail`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[StepCount] = []
        self.tail = StepCount(step=-1)

    def mark(self, report) -> None:
        """Close the current step's count (an ``invert`` callback; reads no tensor)."""
        self.tail.step = report.step
        self.steps.append(self.tail)
        self.tail = StepCount(step=-1)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.tail.ops += 1
        if (func in SYNCING_OPS or _is_boolean_index(func, args)) and not _called_from_host_side_code():
            self.tail.syncs += 1
            self.tail.sync_names.append(str(func))
        return func(*args, **(kwargs or {}))
