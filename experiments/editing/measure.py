"""The editing acceptance numbers on the demo prior, printed (the same settings as the tests).

Brightness (gains 1, 1.3, 1.6; held out 1.45) and rotate (0, 22.5, 45 degrees; held out 30) are
learned with W+ for 80 steps on two bundled samples; the morph runs between their SPHInX
inversions (150 steps). Usage: python experiments/editing/measure.py
"""

from __future__ import annotations

import time

import torch

from sphinx.data import BundledSamples
from sphinx.editing import (
    AttributeEdit,
    attribute_measures,
    build_transform,
    learn_attribute,
    morph,
    morph_measures,
    render_attribute,
)
from sphinx.generators import load_generator
from sphinx.inversion import invert, render_state

SETTINGS = {"brightness": ((1.0, 1.3, 1.6), 1.45), "rotate": ((0.0, 22.5, 45.0), 30.0)}


def main() -> None:
    torch.set_num_threads(1)
    generator = load_generator("demo")
    samples = BundledSamples(resolution=generator.resolution, names=["astronaut", "chelsea"])
    targets = torch.stack([samples[i].image for i in range(len(samples))])
    ids = list(samples.ids)
    for name, (factors, held_out) in SETTINGS.items():
        started = time.perf_counter()
        result = learn_attribute(
            generator,
            targets,
            ids,
            transform=name,
            factors=factors,
            method="wplus",
            steps=80,
            lpips_weight=0.0,
            attribute_lr=0.05,
        )
        print(
            f"\n{name}: factors {factors}, held out {held_out:g}, wplus 80 steps, {time.perf_counter() - started:.0f} s"
        )
        for index, state in enumerate(result.states):
            scores = attribute_measures(generator, state, targets[index], build_transform(name), held_out=[held_out])
            alphas, _ = AttributeEdit.of(state).walk(density=2, extend=0)
            brightness = render_attribute(generator, state, alphas).mean(dim=(1, 2, 3))
            monotone = bool((brightness[1:] > brightness[:-1]).all())
            print(
                f"  {ids[index]}: alphas {[round(a, 3) for a in result.alphas[index].tolist()]}; "
                f"PSNR at held-out {scores[f'psnr_heldout@{held_out:g}']:.2f} dB vs identity frame "
                f"{scores[f'psnr_identity@{held_out:g}']:.2f} dB; learned-factor PSNR {scores['psnr_learned']:.2f} dB"
            )
            if name == "brightness":
                print(
                    f"    mean brightness along the walk {[round(b, 3) for b in brightness.tolist()]}; "
                    f"increasing: {monotone}"
                )
    inverted = invert(generator, targets, ids, method="sphinx", steps=150, lpips_weight=0.0)
    frames = morph(generator, inverted.states[0], inverted.states[1], frames=9)
    ends = [render_state(generator, s) for s in inverted.states]
    scores = morph_measures(frames, ends[0], ends[1])
    print(
        f"\nmorph astronaut -> chelsea (sphinx 150 steps, 9 frames): endpoint error {scores['endpoint_error']:.2e}, "
        f"mean step {scores['step_mean']:.4f}, smoothness (max/mean step) {scores['smoothness']:.3f}"
    )


if __name__ == "__main__":
    main()
