"""The names a report knows: its metrics, how each reads, and the order methods and degradations come in."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sphinx.rundir.columns import SCORES

METRICS = SCORES  # the scores a report compares
METRIC_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "lpips": "LPIPS"}
METRIC_DIGITS = {"psnr": 2, "ssim": 4, "lpips": 4}
LOWER_IS_BETTER = frozenset({"lpips"})
# Known names come in the order a reader expects; anything else follows, alphabetically.
# The registry's order (sphinx.inversion.methods.METHODS, a test holds them equal), written out so
# that the report, a reader of CSV files, does not import torch.
METHOD_ORDER = (
    "sphinx",
    "sphinx_warm",
    "sphinx_fast",
    "sphinx_ps",
    "sphinx_ps_pc",
    "w",
    "wplus",
    "wplus_noise",
    "pti",
    "ilo",
)
DEGRADATION_ORDER = ("none", "denoise", "inpaint", "superres", "compressed_sensing", "colorize")


def order_key(name: str, known: Sequence[str]) -> tuple[int, str]:
    """Sorts ``name`` by its place in ``known``, after which unknown names come alphabetically."""
    return (known.index(name), "") if name in known else (len(known), name)


def ordered(names: Iterable[str], known: Sequence[str]) -> list[str]:
    """The distinct ``names`` in reading order (see :func:`order_key`)."""
    return sorted(set(names), key=lambda name: order_key(name, known))


def format_metric(value: float, metric: str, *, signed: bool = False) -> str:
    """``value`` with the digits its metric is read to (``signed``: always with its sign)."""
    return f"{value:{'+' if signed else ''}.{METRIC_DIGITS[metric]}f}"
