"""Making a sample's arithmetic independent of the batch it is computed in."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

# Set only by whole_batch(), which restores it: a scoped switch like torch's own backend flags,
# read at call time so that torch.compile guards on it.
_whole_batch_on_cpu = False


def samplewise(op: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Apply ``op`` to each sample alone on CPU, to the whole batch elsewhere.

    CPU GEMM and convolution kernels round differently for different batch sizes, and Adam
    amplifies those 1e-6 differences into visible ones within a few steps. Calling the op one
    sample at a time makes a sample's arithmetic identical whatever batch it is in, at a small
    cost on CPU (convolutions there are compute-bound). On GPUs batching is where the speed is,
    so the batch runs whole and results agree to float tolerance; inside :func:`whole_batch` the
    CPU does the same.

    Args:
        op: a function of a ``[N, ...]`` tensor that treats samples independently.
        x: ``[B, ...]``.
    """
    if not runs_per_sample(x):
        return op(x)
    return torch.cat([op(sample) for sample in x.split(1)])


def runs_per_sample(x: torch.Tensor) -> bool:
    """Whether :func:`samplewise` splits the batch ``x`` (``[B, ...]``) into single samples."""
    return x.device.type == "cpu" and x.shape[0] > 1 and not _whole_batch_on_cpu


@contextmanager
def whole_batch(enabled: bool = True) -> Iterator[None]:
    """Within this block, :func:`samplewise` runs the whole batch on CPU too (when ``enabled``).

    Faster on CPU for small images (fewer, larger kernels), but a sample's result then depends
    on its batch at float rounding, as on a GPU.
    """
    global _whole_batch_on_cpu
    before = _whole_batch_on_cpu
    _whole_batch_on_cpu = enabled or before
    try:
        yield
    finally:
        _whole_batch_on_cpu = before
