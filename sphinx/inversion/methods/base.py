"""What every inversion method provides to the one optimization loop."""

from __future__ import annotations

import dataclasses
import math
import weakref
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch

from sphinx.errors import CheckpointError, ConfigError
from sphinx.generators.stylegan2 import Generator
from sphinx.inversion.objective import ReconstructionLoss

if TYPE_CHECKING:
    from sphinx.inversion.state import InversionState


# Step counts a method may have, in the order a summary lists them.
STEP_FIELDS = ("steps", "noise_steps", "pivot_steps")
# Loss weight pairs: without LPIPS, the MSE term of the same pair carries the loss.
_LOSS_PAIRS = (("lpips_weight", "mse_weight"), ("pivot_lpips_weight", "pivot_mse_weight"))
_KINDS = {
    bool: ((bool,), "true or false"),
    int: ((int,), "an integer"),
    float: ((int, float), "a number"),
    str: ((str,), "a string"),
}


@dataclass(frozen=True, kw_only=True)
class MethodConfig:
    """A method's hyperparameters, checked when built: a config that exists can run.

    Subclasses are frozen dataclasses whose defaults are their source's; ``name`` is the
    registered method (variants share a class and differ in name and defaults, see
    :data:`sphinx.inversion.methods.METHODS`). Every option must have its default's type (an
    int where a float is expected is fine); step counts, learning rates and loss weights must be
    in range; :meth:`check` adds a method's own rules.
    """

    name: str

    def __post_init__(self) -> None:
        self.complete()
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for option, default in defaults.items():
            self._check_type(option, getattr(self, option), default)
        for option, value in self.options().items():
            if option.endswith("steps") and (not isinstance(value, int) or value < 0):
                raise ConfigError(f"method.{option} must be a non-negative integer, got {value!r}")
            if option in ("lr", "pivot_lr") and not value > 0:
                raise ConfigError(f"method.{option} must be positive, got {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"method.{option} must be finite, got {value!r}")
            if option.endswith("_weight") and value < 0:
                raise ConfigError(f"method.{option} must be non-negative, got {value!r}")
        self.check()

    def _check_type(self, option: str, value, default) -> None:
        if type(default) not in _KINDS:
            return  # None: the method fills it in (complete)
        kinds, expected = _KINDS[type(default)]
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            raise ConfigError(f"method.{option} of method '{self.name}' must be {expected}, got {value!r}")
        if isinstance(default, int) and not isinstance(default, bool) and value < 0:
            raise ConfigError(f"method.{option} must be non-negative, got {value!r}")

    def complete(self) -> None:
        """Fill in the options left to the method (None), before the checks."""

    def check(self) -> None:
        """Raise :class:`sphinx.errors.ConfigError` for values that cannot work together."""

    @property
    def implementation(self) -> type[Method]:
        """The :class:`Method` that runs this config."""
        raise NotImplementedError

    def check_batch_size(self, batch_size: int) -> None:
        """Raise :class:`sphinx.errors.ConfigError` if the method cannot run batches of this size."""

    def check_generator(self, generator: Generator) -> None:
        """Raise :class:`sphinx.errors.ConfigError` for options that do not fit the generator."""

    def options(self) -> dict[str, object]:
        """Every hyperparameter but the name: what states, checkpoints and run fingerprints record."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "name"}

    def step_counts(self) -> dict[str, int]:
        """The step counts it runs, e.g. ``{"steps": 500}`` or PTI's tuning and pivot steps."""
        options = self.options()
        return {option: options[option] for option in STEP_FIELDS if option in options}

    def without_lpips(self) -> MethodConfig:
        """This config for a run without LPIPS: its weights 0, and MSE carries the loss."""
        changes = {}
        for lpips_key, mse_key in _LOSS_PAIRS:
            if getattr(self, lpips_key, 0) > 0:
                changes[lpips_key] = 0.0
                if getattr(self, mse_key) == 0:
                    changes[mse_key] = 1.0
        return dataclasses.replace(self, **changes)

    @classmethod
    def refuse_unknown(cls, name: str, options) -> None:
        """Refuse option names this config class does not have, listing the ones it has."""
        known = {f.name for f in dataclasses.fields(cls)} - {"name"}
        unknown = sorted(set(options) - known - {"name"})
        if unknown:
            raise ConfigError(
                f"method '{name}' has no option {', '.join(unknown)}; its options are {', '.join(sorted(known))}"
            )


@dataclass(frozen=True)
class GeneratorInputs:
    """What ``G.synthesis`` is called with for a batch: the W+ latents, noise and 4x4 input.

    Editing (attribute directions, morphing, latent directions) works on these, whatever the
    method that produced them.

    Attributes:
        ws: W+ latents ``[B, n_latent, style_dim]``.
        noise: one map per layer, each ``[B or 1, 1, r, r]``; None: the generator's stored maps.
        content: the 4x4 input ``[B, C4, 4, 4]``; None: the generator's learned constant.
    """

    ws: torch.Tensor
    noise: list[torch.Tensor] | None = None
    content: torch.Tensor | None = None

    def render(self, generator: Generator) -> torch.Tensor:
        """``G.synthesis`` of these inputs: images ``[B, 3, H, W]``."""
        return generator.synthesis(self.ws, noise=self.noise, input=self.content)


@dataclass(frozen=True)
class ParamGroup:
    """Tensors optimized together at one base learning rate.

    Attributes:
        params: leaf tensors, each with the image axis first.
        lr: base learning rate.
        scheduled: whether the projector ramp (warm-up, cosine ramp-down) scales ``lr``.
    """

    params: tuple[torch.Tensor, ...]
    lr: float
    scheduled: bool


@dataclass(frozen=True)
class Stage:
    """A run of Adam steps on some parameter groups under one loss.

    Attributes:
        name: shown in progress bars and loss histories (e.g. ``"w+"``, ``"noise"``).
        steps: number of steps.
        groups: what is optimized.
        lpips_weight, mse_weight: weights of the reconstruction terms.
        rampup, rampdown: fractions of the stage for the learning-rate ramps.
        lpips_stop: stop the stage early once every image's LPIPS is at most this (PTI).
    """

    name: str
    steps: int
    groups: tuple[ParamGroup, ...]
    lpips_weight: float
    mse_weight: float
    rampup: float = 0.0
    rampdown: float = 0.0
    lpips_stop: float | None = None


class Method(ABC):
    """A parameterization of the generator's inputs for a batch of images.

    Subclasses own their per-image tensors (every one with the image axis first, seeded from
    (seed, image id)) and say how to render them; the loop in :mod:`sphinx.inversion.loop` does
    the rest.
    """

    # Whether the image is G.synthesis of GeneratorInputs (False for PTI, whose per-image
    # generator weights are part of the image): only such methods can be edited in W+.
    latent_inputs: ClassVar[bool] = False

    def __init__(self, generator: Generator, ids: Sequence[str], config: MethodConfig, *, seed: int) -> None:
        self.generator = generator
        self.ids = list(ids)
        self.config = config
        self.seed = seed
        self.device = generator.input.input.device
        # What training steps render with: G.synthesis, or invert's compiled version of it.
        self.synthesis = generator.synthesis

    def synthesize(self, inputs: GeneratorInputs) -> torch.Tensor:
        """A training step's images ``[B, 3, H, W]`` from ``inputs``, through :attr:`synthesis`."""
        return self.synthesis(inputs.ws, noise=inputs.noise, input=inputs.content)

    @abstractmethod
    def stages(self) -> list[Stage]:
        """The optimization stages, in order."""

    def render(self, stage: Stage, step: int, progress: float) -> torch.Tensor:
        """Images ``[B, 3, H, W]`` for a training step (with this step's random draws): by default
        ``G.synthesis`` of :meth:`inputs`."""
        return self.synthesize(self.inputs(stage, step, progress))

    def objective(self, operator, observation: torch.Tensor, *, lpips, use_lpips: bool) -> ReconstructionLoss:
        """The per-image reconstruction terms of a step's images against the observation.

        Args:
            operator: the batch's bound degradation ``A``.
            observation: ``y = A(x)``, ``[B, ...]``.
            lpips: the perceptual distance, or None.
            use_lpips: whether LPIPS applies to the observation.
        """
        return ReconstructionLoss(operator, observation, lpips=lpips, use_lpips=use_lpips)

    def regularization(self, stage: Stage, step: int, perceptual) -> dict[str, torch.Tensor]:
        """Weighted per-image penalties ``[B]`` added to the loss in order, by name (none: empty).

        ``perceptual`` is the run's LPIPS distance ``(x, y) -> [B]`` on images (pooled to at
        most 256 px), or None when the run has none.
        """
        return {}

    def renders_reported_image(self, stage: Stage) -> bool:
        """Whether :meth:`render` in ``stage`` gives what :meth:`render_final` would now.

        When it does, quality curves score the step's own image instead of rendering again.
        """
        return False

    def after_step(self, stage: Stage) -> None:
        """Hook run after each optimizer step (e.g. noise renormalization)."""

    def loop_records(self) -> list:
        """What the method keeps besides its parameters that a resumed batch needs, as
        :class:`sphinx.inversion.step.LoopRecord` objects the loop checkpoints (none by default)."""
        return []

    @torch.no_grad()
    def render_final(self) -> torch.Tensor:
        """The reported reconstructions ``[B, 3, H, W]``, from a fixed per-image draw: by default
        ``G.synthesis`` of :meth:`inputs` of that draw."""
        return self.inputs(None, 0, 1.0).render(self.generator)

    def render_vicinity(self, draw: int) -> torch.Tensor | None:
        """Images from a fresh draw of the method's random inputs, or None if it has none."""
        return None

    def state(self, index: int) -> dict[str, torch.Tensor]:
        """Image ``index``'s tensors: enough for :meth:`render_state` to re-render it."""
        return {name: t[index].detach().clone() for name, t in self.tensors().items()}

    @property
    def state_config(self) -> MethodConfig:
        """The method a saved state names: this one (a method wrapping another names the one it wraps)."""
        return self.config

    @classmethod
    @torch.no_grad()
    def render_state(cls, generator: Generator, tensors: dict[str, torch.Tensor], config) -> torch.Tensor:
        """Re-render one saved image ``[1, 3, H, W]`` from :meth:`state`'s tensors: by default
        ``G.synthesis`` of :meth:`state_inputs`."""
        return cls.state_inputs(generator, tensors, config).render(generator)

    def inputs(self, stage: Stage | None, step: int, progress: float) -> GeneratorInputs:
        """The generator inputs of a training step (``stage`` None: of the fixed final draw).

        Only for methods with ``latent_inputs``; their :meth:`render` is ``G.synthesis`` of these.
        """
        raise ConfigError(
            f"method {self.config.name} has no W+ input to edit; use sphinx, its variants, w, wplus or wplus_noise"
        )

    def tensors(self) -> dict[str, torch.Tensor]:
        """The live per-image tensors (image axis first), named as in :meth:`state`."""
        raise ConfigError(
            f"method {self.config.name} cannot start from a saved state; use sphinx, its "
            "variants, w, wplus or wplus_noise"
        )

    @torch.no_grad()
    def restore(self, states: Sequence[InversionState]) -> None:
        """Start every image from its saved state (one per image, of this method) instead of from scratch."""
        for state in states:
            if state.method != self.config.name:
                raise CheckpointError(
                    f"inversion state of image {state.image_id} was made with method {state.method}; "
                    f"start method {self.config.name} from a state of the same method"
                )
        for name, tensor in self.tensors().items():
            missing = [s.image_id for s in states if name not in s.tensors]
            if missing:
                raise ConfigError(
                    f"saved state of image {missing[0]} has no tensor '{name}'; it was made with other "
                    f"options of method {self.config.name}"
                )
            tensor.copy_(torch.stack([s.tensors[name] for s in states]).to(tensor))

    @classmethod
    def state_inputs(cls, generator: Generator, tensors: dict[str, torch.Tensor], config) -> GeneratorInputs:
        """The generator inputs ``[1, ...]`` that :meth:`render_state` renders."""
        raise ConfigError(
            f"a method {config.name} state has no W+ input to edit; invert with sphinx, its "
            "variants, w, wplus or wplus_noise"
        )


_W_STATISTICS: weakref.WeakKeyDictionary[Generator, dict] = weakref.WeakKeyDictionary()
W_STATISTICS_SEED = 123  # the StyleGAN2 projector's fixed RandomState(123)


@torch.no_grad()
def w_statistics(generator: Generator, samples: int) -> tuple[torch.Tensor, float]:
    """Mean W ``[style_dim]`` and its scalar spread over ``samples`` seeded draws of z.

    The spread is ``sqrt(sum ||w - mean||^2 / samples)``, as in the StyleGAN2 projector. Results
    are remembered per generator, since every batch of a run needs the same numbers.
    """
    cache = _W_STATISTICS.setdefault(generator, {})
    if samples not in cache:
        draw = torch.Generator().manual_seed(W_STATISTICS_SEED)
        z = torch.randn(samples, generator.style_dim, generator=draw).to(generator.input.input.device)
        w = torch.cat([generator.mapping(chunk) for chunk in z.split(4096)])  # [samples, style_dim]
        mean = w.mean(dim=0)
        spread = float(((w - mean).square().sum() / samples).sqrt())
        cache[samples] = (mean, spread)
    return cache[samples]


def broadcast_rows(w: torch.Tensor, n_latent: int) -> torch.Tensor:
    """Repeat a single W ``[B, style_dim]`` to every layer: ``[B, n_latent, style_dim]``."""
    return w[:, None, :].expand(-1, n_latent, -1)
