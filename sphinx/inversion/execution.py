"""How an inversion step runs: host checks, batch arithmetic, graph capture and precision.

What a step computes is the method's business; these options only change how fast it runs and,
except ``check_every``, the float rounding of its result. Every default keeps results
bit-identical on CPU.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from sphinx.errors import ConfigError
from sphinx.utils.batch_invariance import whole_batch

CHECK_EVERY = 20
COMPILE_MODES = ("none", "synthesis", "step")
PRECISIONS = ("float32", "bfloat16")


@dataclass(frozen=True)
class Execution:
    """How :func:`sphinx.inversion.invert` runs its steps.

    Attributes:
        check_every: the host reads the per-image failure flags and PTI's early stop every this
            many steps and at the end of each stage; in between, a step never waits for the
            device. Results do not depend on it: a stop found late is applied where it happened.
            (Only a batch whose images have all failed runs on until the next check; the failed
            images' own parameters then move further, their outputs are NaN either way.)
        exact_batch: on CPU, run each sample's convolutions and products alone, so that a result
            is bit-identical whatever its batch. False runs the batch whole, as a GPU always
            does: faster for small images, results then agree to float rounding.
        compile: ``none``; ``synthesis``: ``torch.compile`` the generator's synthesis network
            (not PTI's tuned generator); ``step``: also the LPIPS trunk, on a GPU both as CUDA
            graphs (``mode="reduce-overhead"``) and with a fused Adam.
        precision: ``float32``; ``bfloat16`` runs the generator and the LPIPS trunk under
            bfloat16 autocast, while the per-image parameters and heads, the loss terms and
            Adam's state stay float32.
    """

    check_every: int = CHECK_EVERY
    exact_batch: bool = True
    compile: str = "none"
    precision: str = "float32"

    def __post_init__(self) -> None:
        if isinstance(self.check_every, bool) or not isinstance(self.check_every, int) or self.check_every < 1:
            raise ConfigError(f"execution.check_every must be a positive integer, got {self.check_every!r}")
        if not isinstance(self.exact_batch, bool):
            raise ConfigError(f"execution.exact_batch must be true or false, got {self.exact_batch!r}")
        if self.compile not in COMPILE_MODES:
            raise ConfigError(f"execution.compile must be one of {', '.join(COMPILE_MODES)}, got {self.compile!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"execution.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    def changes_rounding(self) -> dict[str, object]:
        """The options set away from their defaults that move results at float rounding."""
        defaults = Execution()
        return {
            name: getattr(self, name)
            for name in ("exact_batch", "compile", "precision")
            if getattr(self, name) != getattr(defaults, name)
        }

    def batch_arithmetic(self) -> contextlib.AbstractContextManager:
        """The block in which the batch runs whole on CPU, unless ``exact_batch``."""
        return whole_batch(not self.exact_batch)

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """The generator's (and LPIPS trunk's) precision: bfloat16 autocast or nothing."""
        if self.precision == "float32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)

    def graphs(self, device: torch.device) -> bool:
        """Whether compiled parts run as CUDA graphs."""
        return self.compile == "step" and device.type == "cuda"

    def synthesis(self, generator: torch.nn.Module) -> Callable[..., torch.Tensor]:
        """``generator.synthesis``, compiled when asked (once per generator and mode)."""
        if self.compile == "none":
            return generator.synthesis
        return _compiled(generator, "synthesis", self.graphs(next(generator.parameters()).device))

    def perceptual(self, lpips, device: torch.device):
        """The loss's LPIPS: as given, or with its trunk under autocast and compiled."""
        if lpips is None or not hasattr(lpips, "embed") or (self.precision == "float32" and self.compile != "step"):
            return lpips
        graphs = self.graphs(device)
        embed = _compiled(lpips, "embed", graphs) if self.compile == "step" else lpips.embed
        return _PerceptualTrunk(lpips, embed, lambda: self.autocast(device), graphs=graphs)

    def fused_adam(self, device: torch.device) -> bool:
        """Whether Adam runs fused (one kernel per step), as graph capture wants."""
        return self.graphs(device)

    def begin_step(self, device: torch.device) -> None:
        """Tell CUDA-graph trees that a new step begins, so that they may reuse its buffers."""
        if self.graphs(device):
            torch.compiler.cudagraph_mark_step_begin()


# One compiled function per class, method and mode, so that every batch of a run (each its own
# invert call) reuses the first one's compilation; the module is an argument it guards on.
_COMPILED: dict[tuple[type, str, bool], Callable] = {}


def _compiled(module: torch.nn.Module, method: str, graphs: bool) -> Callable:
    key = (type(module), method, graphs)
    if key not in _COMPILED:
        _COMPILED[key] = torch.compile(getattr(type(module), method), mode="reduce-overhead" if graphs else None)
    return functools.partial(_COMPILED[key], module)


class _PerceptualTrunk:
    """LPIPS whose trunk runs through ``embed`` under ``autocast``; the head stays LPIPS's own."""

    def __init__(
        self, lpips, embed: Callable, autocast: Callable[[], contextlib.AbstractContextManager], *, graphs: bool
    ) -> None:
        self.lpips, self._embed, self._autocast, self.graphs = lpips, embed, autocast, graphs

    def embed(self, images: torch.Tensor) -> list[torch.Tensor]:
        with self._autocast():
            features = self._embed(images)
        if self.graphs and not torch.is_grad_enabled():
            # kept across steps (the target's features): a CUDA graph's outputs are overwritten by its next replay
            features = [f.clone() for f in features]
        return features

    def distance(self, features_x: list[torch.Tensor], features_y: list[torch.Tensor]) -> torch.Tensor:
        return self.lpips.distance(features_x, features_y)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.distance(self.embed(x), self.embed(y))
