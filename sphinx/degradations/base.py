"""The forward-operator interface shared by every degradation.

A *degradation* is a small, immutable description built from a config, such as
``GaussianNoise(sigma=0.25)``.
Binding it to a batch of image ids gives a *bound operator* ``A``: every per-image random thing
(mask, box position, sign pattern, noise) is fixed at that moment from a generator seeded by
(seed, image id, stream name), so an image's operator never depends on which other images share
its batch, on their order, or on the number of processes.

Images are NCHW float in [-1, 1] throughout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import torch

from sphinx.errors import ConfigError

ImageShape = tuple[int, int, int]


@runtime_checkable
class BoundOperator(Protocol):
    """A forward operator ``A`` bound to one batch of images.

    Attributes:
        ids: the image ids, one per batch row, in batch order.
        image_shape: ``(C, H, W)`` of the clean images.
        observation_shape: shape of one image's observation, e.g. ``(3, H/4, W/4)`` or ``(m,)``.
        is_image: True when an observation is an image that LPIPS can compare.
    """

    ids: tuple
    image_shape: ImageShape
    observation_shape: tuple[int, ...]
    is_image: bool

    def observe(self, clean: torch.Tensor) -> torch.Tensor:
        """The observation ``y = A(x)`` of clean targets, measurement noise included.

        Args:
            clean: ``[B, C, H, W]`` in [-1, 1], row i is image ``ids[i]``.

        Returns:
            ``[B, *observation_shape]``; calling it twice gives the same tensor.
        """
        ...

    def __call__(self, images: torch.Tensor, *, step: int) -> torch.Tensor:
        """``A`` applied to generated images inside the loss; differentiable.

        Args:
            images: ``[B, C, H, W]`` in [-1, 1].
            step: the optimisation step; only stochastic operators (denoise) read it.

        Returns:
            ``[B, *observation_shape]``.
        """
        ...

    def preview(self, observation: torch.Tensor) -> torch.Tensor:
        """A picture of an observation for reports.

        Args:
            observation: ``[B, *observation_shape]`` as returned by :meth:`observe`.

        Returns:
            ``[B, C, H, W]`` in [-1, 1].
        """
        ...


@runtime_checkable
class Degradation(Protocol):
    """An immutable degradation config that can check a shape and bind to a batch."""

    name: str

    def validate(self, image_shape: Sequence[int]) -> None:
        """Raise :class:`ConfigError` if this degradation cannot work on ``(C, H, W)`` images."""
        ...

    def bind(
        self,
        ids: Sequence[object],
        *,
        image_shape: Sequence[int],
        seed: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> BoundOperator:
        """Fix the per-image operators of a batch.

        Args:
            ids: one stable id per image (file name, index); the seed of its randomness.
            image_shape: ``(C, H, W)`` of the images.
            seed: the run's seed.
            device: where the operator's tensors live.
            dtype: floating dtype of the operator's tensors.

        Returns:
            The bound operator.
        """
        ...


def check_image_shape(image_shape: Sequence[int]) -> ImageShape:
    """``image_shape`` as a ``(C, H, W)`` tuple of positive ints, or :class:`ConfigError`."""
    shape = tuple(image_shape)
    if len(shape) != 3 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
        raise ConfigError(f"image_shape must be (C, H, W) with positive ints, got {image_shape!r}")
    return shape  # type: ignore[return-value]


def check_ids(ids: Sequence[object]) -> tuple:
    """The ids of a batch as a non-empty tuple."""
    ids = tuple(ids)
    if not ids:
        raise ValueError("bind() needs at least one image id")
    return ids


def check_ratio(ratio: object, what: str) -> float:
    """A fraction in (0, 1], or :class:`ConfigError` naming the option."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 < ratio <= 1.0:
        raise ConfigError(f"{what} must be a number in (0, 1], got {ratio!r}")
    return float(ratio)


def check_batch(tensor: torch.Tensor, ids: tuple, shape: tuple[int, ...], what: str) -> None:
    """Refuse a tensor that is not ``[len(ids), *shape]``: a silent broadcast would mix images."""
    expected = (len(ids), *shape)
    if tuple(tensor.shape) != expected:
        raise ValueError(f"{what}: expected shape {list(expected)}, got {list(tensor.shape)}")


@dataclass(frozen=True, eq=False)
class CheckedOperator:
    """What every bound operator shares: shape checks around ``measure`` and ``picture``.

    A silent broadcast would mix images, so every entry point checks that its tensor is
    ``[len(ids), *shape]``. Subclasses say what ``A`` does in :meth:`measure`, and may change
    :attr:`observation_shape` and :meth:`picture`.
    """

    ids: tuple
    image_shape: ImageShape
    is_image: ClassVar[bool] = True
    label: ClassVar[str] = "degradation"

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return self.image_shape

    def measure(self, images: torch.Tensor, step: int | None) -> torch.Tensor:
        """``A(images)``; ``step`` is None for the observation of the clean targets."""
        raise NotImplementedError

    def picture(self, observation: torch.Tensor) -> torch.Tensor:
        """A picture of an observation: by default the observation itself, clamped."""
        return observation.clamp(-1.0, 1.0)

    def observe(self, clean: torch.Tensor) -> torch.Tensor:
        check_batch(clean, self.ids, self.image_shape, f"{self.label}.observe")
        return self.measure(clean, None)

    def __call__(self, images: torch.Tensor, *, step: int) -> torch.Tensor:
        check_batch(images, self.ids, self.image_shape, self.label)
        return self.measure(images, int(step))

    def preview(self, observation: torch.Tensor) -> torch.Tensor:
        check_batch(observation, self.ids, self.observation_shape, f"{self.label}.preview")
        return self.picture(observation)


class DegradationBase:
    """The binding every degradation shares: validate, normalize the arguments, then ``_bind``."""

    def bind(
        self,
        ids: Sequence[object],
        *,
        image_shape: Sequence[int],
        seed: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        """Fix the per-image operators of a batch; see :meth:`Degradation.bind`."""
        self.validate(image_shape)
        return self._bind(check_ids(ids), check_image_shape(image_shape), int(seed), torch.device(device), dtype)

    def _bind(self, ids: tuple, shape: ImageShape, seed: int, device: torch.device, dtype: torch.dtype):
        raise NotImplementedError
