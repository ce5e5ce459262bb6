"""Small data makers and test-tier helpers."""

from __future__ import annotations

import pytest
import torch


def images_of(generator, count: int) -> torch.Tensor:
    """``count`` images the generator itself made (seed 3): a perfect inversion exists."""
    with torch.no_grad():
        z = torch.randn(count, generator.style_dim, generator=torch.Generator().manual_seed(3))
        return generator(z).clamp(-1, 1)


def fast_tier(values, *, keep):
    """``values`` for ``parametrize`` with only those in ``keep`` in the fast tier: the others are
    marked slow, so ``-m "not slow"`` checks a representative few and the full suite every one."""
    return [value if value in keep else pytest.param(value, marks=pytest.mark.slow) for value in values]
