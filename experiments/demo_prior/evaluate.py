"""Held-out evaluation of the demo prior: W+ inversion of held-out emoji versus OOD photographs.

Each target is inverted by a small self-contained W+ loop: W+ starts at ``latent_avg`` in every
row, the generator's stored noise maps stay fixed, the loss is the per-image pixel MSE, and
Adam (constant learning rate) runs for 500 steps. Images are 64x64 RGB in [-1, 1]; PSNR
(data range 1) and SSIM are measured on [0, 1] images.

Run from the repository root::

    python -m sphinx.data.emoji --out data/emoji64
    python experiments/demo_prior/evaluate.py --data data/emoji64 --generator demo

It writes ``results.md`` (the table), ``results.csv`` (per image) and ``reconstructions.png``
(targets in odd rows, their inversions below) next to this script.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data as skdata
from skimage.metrics import structural_similarity

from sphinx.data.emoji import load_images, read_index
from sphinx.generators import load_generator
from sphinx.generators.stylegan2 import Generator
from sphinx.training.grid import save_grid

HERE = Path(__file__).resolve().parent
RESOLUTION = 64


def _square(photo: np.ndarray, top: int, left: int, side: int) -> np.ndarray:
    return photo[top : top + side, left : left + side]


def _center_square(photo: np.ndarray) -> np.ndarray:
    side = min(photo.shape[:2])
    top, left = (photo.shape[0] - side) // 2, (photo.shape[1] - side) // 2
    return _square(photo, top, left, side)


def ood_photos() -> dict[str, torch.Tensor]:
    """The OOD targets from ``skimage.data``, each ``[3, 64, 64]`` in [-1, 1]."""
    photos = {
        "astronaut_face": _square(skdata.astronaut(), 10, 145, 190),  # the face, hair to chin
        "chelsea": _center_square(skdata.chelsea()),
        "coffee": _center_square(skdata.coffee()),
        "retina": _center_square(skdata.retina()),
    }
    return {name: _to_tensor(photo) for name, photo in photos.items()}


def _to_tensor(photo: np.ndarray) -> torch.Tensor:
    image = Image.fromarray(photo).convert("RGB").resize((RESOLUTION, RESOLUTION), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 127.5 - 1  # [3, 64, 64]


def invert_wplus(generator: Generator, targets: torch.Tensor, *, steps: int = 500, lr: float = 0.05) -> torch.Tensor:
    """Fit one W+ latent per target by Adam on the pixel MSE, with the stored noise fixed.

    Args:
        generator: a frozen generator with ``latent_avg``.
        targets: ``[B, 3, R, R]`` in [-1, 1].
        steps: optimizer steps.
        lr: Adam learning rate.

    Returns:
        Reconstructions ``[B, 3, R, R]`` (not clamped).
    """
    batch = targets.shape[0]
    start = generator.latent_avg.reshape(1, 1, generator.style_dim)
    ws = start.repeat(batch, generator.n_latent, 1).clone().requires_grad_(True)  # [B, n_latent, S]
    optimizer = torch.optim.Adam([ws], lr=lr)
    for _ in range(steps):
        # summed per-image means: each image's gradient is its own, as if inverted alone
        loss = (generator.synthesis(ws) - targets).pow(2).mean(dim=[1, 2, 3]).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return generator.synthesis(ws)


def psnr_ssim(reconstruction: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """PSNR (dB, data range 1) and SSIM of one image pair ``[3, R, R]`` in [-1, 1], on [0, 1]."""
    ours = ((reconstruction.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).double().numpy()
    theirs = ((target.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).double().numpy()
    mse = float(np.mean((ours - theirs) ** 2))
    psnr = 10 * np.log10(1.0 / max(mse, 1e-12))
    ssim = structural_similarity(ours, theirs, channel_axis=2, data_range=1.0)
    return float(psnr), float(ssim)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="data/emoji64", help="folder written by python -m sphinx.data.emoji")
    parser.add_argument("--generator", default="demo", help="preset name or checkpoint path")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(HERE), help="folder for results.md/.csv and reconstructions.png")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    generator = load_generator(args.generator)
    if generator.latent_avg is None:
        raise SystemExit(f"{args.generator} has no latent_avg; W+ inversion starts from it")
    held_out = load_images(args.data, split="test")
    names = [row["name"] for row in read_index(args.data, split="test")]
    photos = ood_photos()
    sets = {"held-out emoji": (held_out, names), "OOD photos": (torch.stack(list(photos.values())), list(photos))}

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, panels = [], []
    started = time.perf_counter()
    for set_name, (targets, labels) in sets.items():
        reconstructions = invert_wplus(generator, targets, steps=args.steps, lr=args.lr)
        for label, reconstruction, target in zip(labels, reconstructions, targets):
            psnr, ssim = psnr_ssim(reconstruction, target)
            rows.append({"set": set_name, "image": label, "psnr": f"{psnr:.2f}", "ssim": f"{ssim:.4f}"})
        for start in range(0, len(targets), 8):
            chunk = slice(start, start + 8)
            panels += [_pad8(targets[chunk]), _pad8(reconstructions[chunk])]
    seconds = time.perf_counter() - started

    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["set", "image", "psnr", "ssim"])
        writer.writeheader()
        writer.writerows(rows)
    save_grid(torch.cat(panels), out / "reconstructions.png", columns=8, padding=2)

    lines = [
        f"W+ inversion, {args.steps} Adam steps (lr {args.lr}), MSE only, start at w_avg, stored noise; "
        f"64x64 RGB; PSNR with data range 1 on [0, 1]. Generator: `{args.generator}`. "
        f"Total time {seconds:.0f} s on {args.threads} CPU thread(s).",
        "",
        "| set | images | PSNR mean (dB) | PSNR min | PSNR max | SSIM mean |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for set_name in sets:
        psnr = np.array([float(r["psnr"]) for r in rows if r["set"] == set_name])
        ssim = np.array([float(r["ssim"]) for r in rows if r["set"] == set_name])
        lines.append(
            f"| {set_name} | {len(psnr)} | {psnr.mean():.2f} | {psnr.min():.2f} | {psnr.max():.2f} | "
            f"{ssim.mean():.4f} |"
        )
    lines += ["", "OOD photos one by one:", "", "| image | PSNR (dB) | SSIM |", "| --- | ---: | ---: |"]
    lines += [f"| {r['image']} | {r['psnr']} | {r['ssim']} |" for r in rows if r["set"] == "OOD photos"]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _pad8(images: torch.Tensor) -> torch.Tensor:
    """Pad a chunk to 8 images with white, so targets and reconstructions stay in rows of 8."""
    missing = 8 - images.shape[0]
    return torch.cat([images, torch.ones(missing, *images.shape[1:])]) if missing else images


if __name__ == "__main__":
    main()
