"""Export the demo prior from a training run, and draw the model card's figures.

Run from the repository root::

    python experiments/demo_prior/export.py outputs/train/<run>/checkpoints/last.pt

Writes ``sphinx/assets/demo_prior.pt`` (float16 ``g_ema`` + ``latent_avg``), prints its sha256
(for the ``demo`` preset), and writes next to this script ``samples_psi1.0.png`` and
``samples_psi0.7.png`` (64 samples from fixed seeds, stored noise) and ``loss_curves.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from sphinx.generators import load_generator  # noqa: E402
from sphinx.training.export import export_generator  # noqa: E402
from sphinx.training.grid import save_grid  # noqa: E402
from sphinx.utils.download import file_sha256  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
SAMPLE_SEED = 2024


def sample_grids(asset: Path, out: Path) -> None:
    generator = load_generator(asset)
    z = torch.randn(64, generator.style_dim, generator=torch.Generator().manual_seed(SAMPLE_SEED))
    with torch.no_grad():
        for psi in (1.0, 0.7):
            save_grid(generator(z, truncation=psi), out / f"samples_psi{psi:.1f}.png", columns=8)


def loss_curves(checkpoint: Path, out: Path, *, events: dict[int, str] | None = None, window: int = 10) -> None:
    """Plot the checkpoint's loss history; ``events`` marks steps (e.g. a changed setting) with a label."""
    history = torch.load(checkpoint, map_location="cpu", weights_only=True)["history"]
    steps = np.asarray(history["step"])
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))

    def smooth(values: list[float]) -> tuple[np.ndarray, np.ndarray]:
        """Running mean over ``window`` points (NaN-free series), with the steps it belongs to."""
        values = np.asarray(values, dtype=float)
        keep = np.isfinite(values)
        x, y = steps[keep], values[keep]
        if len(y) < window:
            return x, y
        return x[window - 1 :], np.convolve(y, np.ones(window) / window, mode="valid")

    for key, label, color in (("loss_d", "D loss", "C0"), ("loss_g", "G loss", "C1")):
        axes[0].plot(steps, history[key], alpha=0.2, color=color)
        axes[0].plot(*smooth(history[key]), label=label, color=color)
    axes[0].set_title(f"logistic losses ({window}-point running mean)")
    for key, label in (("real_logit", "D(real)"), ("fake_logit", "D(fake)")):
        axes[1].plot(*smooth(history[key]), label=label)
    axes[1].set_title("mean discriminator logits")
    axes[2].plot(*smooth(history["r1"]))
    axes[2].set_yscale("log")
    axes[2].set_title("R1 penalty (unweighted, running mean)")
    for axis in axes:
        for step in events or {}:
            axis.axvline(step, color="gray", linestyle=":", linewidth=1)
        axis.set_xlabel(f"step (log point = {int(steps[1] - steps[0]) if len(steps) > 1 else 1} steps)")
    if events:
        axes[0].plot([], [], color="gray", linestyle=":", label="; ".join(f"{s}: {t}" for s, t in events.items()))
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "loss_curves.png", dpi=100)


def _event(text: str) -> tuple[int, str]:
    step, _, label = text.partition("=")
    return int(step), label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path, help="checkpoints/last.pt of a training run")
    parser.add_argument("--asset", type=Path, default=REPO_ROOT / "sphinx" / "assets" / "demo_prior.pt")
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument(
        "--event",
        type=_event,
        action="append",
        default=[],
        metavar="STEP=TEXT",
        help="mark a step in the loss curves, e.g. 3000='R1 gamma 0.1 -> 1.0'",
    )
    args = parser.parse_args()
    asset = export_generator(args.checkpoint, args.asset)
    print(f"{asset}: {asset.stat().st_size / 1e6:.2f} MB, sha256 {file_sha256(asset)}")
    sample_grids(asset, args.out)
    loss_curves(args.checkpoint, args.out, events=dict(args.event))


if __name__ == "__main__":
    main()
