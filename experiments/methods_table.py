"""Writes the README's table of methods (the ``methods`` block) from the method registry.

    python experiments/methods_table.py

Every number in the table (steps, learning rates, loss weights, widths, regularizer weights) is
read from the method's config defaults (``sphinx.inversion.methods.METHODS``), so the table says
what ``method=<name>`` runs; only the words are written here.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_block import replace_block  # noqa: E402

from sphinx.inversion.methods import METHODS, method_config  # noqa: E402

# What each method optimizes, in words; {field} is the config's value.
WHAT = {
    "sphinx": "style head (shared encoder to a {bottleneck}-wide bottleneck, one decoder per W+ row), content head "
    "(1x1 convs on an 8x4x4 draw), all noise maps; a fresh draw every step (`vicinal`)",
    "sphinx_warm": "as `sphinx`, with the content head started at G's learned 4x4 input (`content_init: "
    "{content_init}`; ours)",
    "sphinx_fast": "as `sphinx_warm` at {lr:g} for {steps} steps, fresh draws intact (ours; see Deviations)",
    "sphinx_ps": "style head only (G's stored noise)",
    "sphinx_ps_pc": "style + content heads (G's stored noise)",
    "w": "one W from the mean of {w_avg_samples} draws + noise (regularized {noise_regularize:g}, renormalized per "
    "image), W jitter (StyleGAN2 projector)",
    "wplus": "W+ from the mean W (Image2StyleGAN)",
    "wplus_noise": "W+, then the noise maps (Image2StyleGAN++)",
    "pti": "W pivot ({pivot_steps} steps, peak lr {pivot_lr:g}, mean W of {w_avg_samples}), then the generator's "
    "synthesis weights as a per-image delta (stops at LPIPS <= {lpips_threshold:g}); locality regularizer off as "
    "in PTI",
    "ilo": "z per W+ row through PULSE's Gaussian-fit proxy; round k also noise maps 0..4+2k and the map entering "
    "block k; z rows and noise projected to their round-start norms; l1 balls off as in ILO. Reports its "
    "**lowest-MSE** image, the only method that keeps its best rather than its last",
}


def steps(config) -> str:
    counts = config.step_counts()
    if hasattr(config, "rounds"):
        return " + ".join(str(r) for r in config.rounds) + " (rounds)"
    if "noise_steps" in counts:
        return f"{counts['steps'] - counts['noise_steps']} + {counts['noise_steps']}"
    if "pivot_steps" in counts:
        return f"{counts['pivot_steps']} + up to {counts['steps']}"
    return str(counts["steps"])


def learning_rate(config) -> str:
    text = f"{config.lr:g}"
    if getattr(config, "schedule", None) == "style_only":
        text += ", ramped on the style head only"
    elif getattr(config, "schedule", None) == "all":
        text += ", ramped on every group"
    if hasattr(config, "rounds"):
        text += f" per round, ramps {config.rampup:g} / {config.rampdown:g}"
    elif not hasattr(config, "schedule") and hasattr(config, "rampdown"):
        text += f", ramped on every group ({config.rampup:g} / {config.rampdown:g})"
    return text


def loss(config) -> str:
    terms = [f"{weight:g} {name}" for name, weight in (("LPIPS", config.lpips_weight), ("MSE", config.mse_weight))]
    terms = [term for term in terms if not term.startswith("0 ")]
    if getattr(config, "geocross_weight", 0):
        terms.append(f"{config.geocross_weight:g} geocross")
    return " + ".join(terms)


def table() -> str:
    rows = ["| method | what is optimized | steps | lr | loss |", "|---|---|---|---|---|"]
    for name in METHODS:
        config = method_config(name)
        what = WHAT[name].format(**{f: getattr(config, f) for f in config.options()})
        rows.append(f"| `{name}` | {what} | {steps(config)} | {learning_rate(config)} | {loss(config)} |")
    return "\n".join(rows)


if __name__ == "__main__":
    text = table() + "\n\nWritten by `python experiments/methods_table.py` from each method's config defaults."
    replace_block("methods", text)
    print(text)
