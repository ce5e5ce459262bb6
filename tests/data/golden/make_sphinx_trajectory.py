"""Writes the golden SPHInX trajectory that pins ``method=sphinx`` (no overrides) to the
authors'-code behaviour verified on main before any option of ours existed.

Run from the repository root (needs the reference fixtures):

    python tests/data/golden/make_sphinx_trajectory.py

Regenerate only if the faithful default is meant to change; the test then says so in review.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from sphinx.generators import load_generator
from sphinx.inversion import invert
from sphinx.metrics.lpips import LPIPS

HERE = Path(__file__).resolve().parent
FIXTURES = Path(os.environ.get("SPHINX_FIXTURES", HERE.parent / "fixtures"))
IDS = ["cat.png", "dog.png"]
STEPS = 30


def golden_inputs():
    """The tiny generator, two of its own images, and a seeded random-weight LPIPS."""
    generator = load_generator(FIXTURES / "rosinality" / "tiny_g32.pt")
    with torch.no_grad():
        z = torch.randn(4, generator.style_dim, generator=torch.Generator().manual_seed(3))
        images = generator(z).clamp(-1, 1)[:2]
    return generator, images, LPIPS("vgg", pretrained=False)


def main() -> None:
    torch.set_num_threads(1)
    generator, images, lpips = golden_inputs()
    result = invert(generator, images, IDS, method="sphinx", lpips=lpips, steps=STEPS, seed=5)
    torch.save(
        {
            "loss_history": result.loss_history,
            "reconstructions": result.reconstructions,
            "vicinity_spread": result.vicinity_spread,
        },
        HERE / "sphinx_trajectory.pt",
    )
    print("loss at steps 0, 10, 29:", result.loss_history[[0, 10, 29]].tolist())


if __name__ == "__main__":
    main()
