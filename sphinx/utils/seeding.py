"""Per-image random streams.

Every random draw that belongs to one image (vicinal inputs, initial noise, masks, jitter,
measurement noise) comes from a generator seeded by (seed, image id, stream name, ...). So a
result never depends on the batch size, the batch composition, the order, or the number of
processes.
"""

from __future__ import annotations

import hashlib
import math

import torch

# StepDraws draws this many steps ahead, fewer where a block would pass DRAW_BLOCK_BYTES (images).
DRAW_BLOCK = 16
DRAW_BLOCK_BYTES = 64 * 2**20


def stream_seed(seed: int, image_id: object, *stream: object) -> int:
    """A 63-bit seed derived from a run seed, an image id and a stream name.

    Args:
        seed: the run's seed.
        image_id: anything with a stable ``str`` (file name, index).
        *stream: names that separate independent streams of one image, e.g. ``"vicinal", step``.

    Returns:
        A non-negative int usable with ``torch.Generator.manual_seed``.
    """
    key = "/".join([str(int(seed)), str(image_id), *map(str, stream)])
    # surrogatepass: a file name that is not UTF-8 reaches Python as lone surrogates; any other id
    # encodes as plain UTF-8, so its seeds are those it always had
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def image_generator(
    seed: int, image_id: object, *stream: object, device: torch.device | str = "cpu"
) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded by :func:`stream_seed`."""
    generator = torch.Generator(device=device)
    generator.manual_seed(stream_seed(seed, image_id, *stream))
    return generator


def per_image_randn(
    shape: tuple[int, ...],
    ids: list | tuple,
    seed: int,
    *stream: object,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Stack one standard-normal draw of ``shape`` per image id.

    Draws are made on the CPU and then moved to ``device``, so that every device sees the same
    numbers for the same (seed, id, stream).

    Returns:
        Tensor of shape ``[len(ids), *shape]``; row i depends only on (seed, ids[i], stream).
    """
    draws = torch.empty((len(ids), *shape), dtype=dtype)
    for row, image_id in zip(draws, ids):
        # normal_ on a fresh contiguous row is what torch.randn does: the same numbers
        row.normal_(generator=image_generator(seed, image_id, *stream))
    return draws.to(device)


class StepDraws:
    """Each image's standard-normal draw at each step of one stream, made a block of steps ahead.

    Step t's draws are exactly ``per_image_randn(shape, ids, seed, *stream, t)``, but they are
    drawn on the host for ``block`` steps at once and reach the device in one copy: a step then
    costs one view instead of one generator and one kernel per image, and never waits for the
    host. Draws do not depend on where a block starts, so a resumed run sees the same numbers.

    Args:
        shape: one image's draw.
        ids: image ids, in batch order.
        seed: run seed.
        *stream: the stream's name; the step index is appended to it.
        device, dtype: where and how draws are returned.
        block: steps drawn at once; None: :data:`DRAW_BLOCK`, or fewer where that many steps of
            the batch would take more than :data:`DRAW_BLOCK_BYTES`.
        limit: steps past this one are never drawn (None: no limit).
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        ids: list | tuple,
        seed: int,
        *stream: object,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        block: int | None = None,
        limit: int | None = None,
    ) -> None:
        self.shape, self.ids, self.seed, self.stream = tuple(shape), list(ids), seed, stream
        self.device, self.dtype = torch.device(device), dtype
        if block is None:
            step_bytes = max(1, len(self.ids) * math.prod(self.shape) * dtype.itemsize)
            block = max(1, min(DRAW_BLOCK, DRAW_BLOCK_BYTES // step_bytes))
        self.block, self.limit = block, limit
        self.first, self.drawn = 0, torch.empty(len(self.ids), 0, *self.shape, device=self.device, dtype=dtype)

    def __call__(self, step: int) -> torch.Tensor:
        """The draws of ``step``, ``[B, *shape]``."""
        if not self.first <= step < self.first + self.drawn.shape[1]:
            self._draw_from(step)
        return self.drawn[:, step - self.first]

    def _draw_from(self, step: int) -> None:
        count = self.block if self.limit is None else max(1, min(self.block, self.limit - step))
        pinned = self.device.type == "cuda"  # lets the copy overlap the running step
        host = torch.empty((len(self.ids), count, *self.shape), dtype=self.dtype, pin_memory=pinned)
        for row, image_id in zip(host, self.ids):
            for offset, draw in enumerate(row):
                draw.normal_(generator=image_generator(self.seed, image_id, *self.stream, step + offset))
        self.first = step
        # a fresh pinned buffer per block: the caching host allocator keeps it until the copy is done
        self.drawn = host.to(self.device, non_blocking=pinned)  # [B, count, *shape]
