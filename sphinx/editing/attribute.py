"""Attribute learning: one W+ direction per image whose walk reproduces a transform.

Following the authors' ``Attribute_learner`` (shared METHODS.md, section 1.8): for targets
T(x, a_0..a_{K-1}), each image's inversion parameters are optimized together with a direction
D ``[n_latent, style_dim]`` and scalars alpha_1..alpha_{K-1} (alpha_0 = 0), so that
``G(w + alpha_k * D / ||D||_row)`` reconstructs T(x, a_k) for every k. The loss is the method's
reconstruction loss averaged over k plus ``mono_weight`` times a hinge that keeps the alphas
increasing by at least ``margin``. It is a method (:class:`AttributeConfig`) that wraps a latent
method, run by :func:`sphinx.inversion.invert` like any other: batched and seeded per image,
with in-batch checkpoints, curves, execution options and stop signals.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from sphinx.editing.latents import render_shifted, shifted_inputs, state_inputs
from sphinx.editing.transforms import Transform, build_transform, check_factors
from sphinx.errors import CheckpointError, ConfigError
from sphinx.generators.stylegan2 import Generator
from sphinx.inversion.curves import QualityCurve
from sphinx.inversion.loop import InversionResult, invert, resolve_method
from sphinx.inversion.methods.base import Method, MethodConfig, ParamGroup, Stage
from sphinx.inversion.objective import ReconstructionLoss
from sphinx.inversion.state import InversionState
from sphinx.utils.seeding import per_image_randn

DIRECTION_KEY = "attribute.direction"
ALPHAS_KEY = "attribute.alphas"
FACTORS_KEY = "attribute.factors"
MONO_WEIGHT = 0.5  # the authors' --mono_weight
MARGIN = 2.0  # the authors' hinge margin
ATTRIBUTE_LR = 1e-3  # the authors' attribute parameter group: Adam's default lr, never ramped
# learn_attribute's keywords that are invert's own rather than the method's
INVERT_OPTIONS = ("seed", "lpips", "callback", "checkpoint", "execution", "initial_states", "record_curve")


def monotonicity_hinge(alphas: torch.Tensor, *, margin: float = MARGIN) -> torch.Tensor:
    """The authors' monotonicity penalty on the learned alphas, per image.

    ``max(0, margin - alpha_1)`` plus ``max(0, margin - (alpha_{k+1} - alpha_k))`` for every
    later k: zero once alpha_1 >= margin and every gap is >= margin (alpha_0 = 0 is implied).

    Args:
        alphas: ``[B, K-1]``, alpha_1..alpha_{K-1}.
        margin: the smallest gap that costs nothing.

    Returns:
        ``[B]``.
    """
    gaps = torch.diff(alphas, dim=1, prepend=torch.zeros_like(alphas[:, :1]))  # [B, K-1]
    return torch.relu(margin - gaps).sum(dim=1)


@dataclass(frozen=True)
class AttributeEdit:
    """One image's learned attribute, as saved in its state.

    Attributes:
        direction: ``[n_latent, style_dim]``, unnormalized (the walk uses its unit rows).
        alphas: ``[K]``, alpha_0 = 0 first.
        factors: ``[K]``, the transform factors the alphas were learned for.
    """

    direction: torch.Tensor
    alphas: torch.Tensor
    factors: torch.Tensor

    @classmethod
    def of(cls, state: InversionState) -> AttributeEdit:
        """The attribute stored in a state written by :func:`learn_attribute`."""
        if DIRECTION_KEY not in state.tensors:
            raise CheckpointError(
                f"inversion state of image {state.image_id} holds no learned attribute; "
                "make one with learn_attribute (python -m sphinx.edit edit=attribute_rotate)"
            )
        return cls(state.tensors[DIRECTION_KEY], state.tensors[ALPHAS_KEY], state.tensors[FACTORS_KEY])

    def alpha_at(self, factor: float) -> float:
        """The alpha for a transform factor: piecewise linear through the learned pairs,
        extended linearly beyond them."""
        return float(_interpolate(torch.tensor([float(factor)]), self.factors, self.alphas)[0])

    def walk(self, *, density: int = 2, extend: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Alphas and their factors for a walk: ``density`` frames per learned gap (2 adds the
        authors' midpoints), plus ``extend`` frames of the same spacing before 0 and after the
        last alpha (extrapolation).

        Returns:
            ``(alphas [F], factors [F])``, F = density * (K - 1) + 1 + 2 * extend.
        """
        if density < 1 or extend < 0:
            raise ConfigError(f"walk density must be >= 1 and extend >= 0, got {density} and {extend}")
        count = len(self.alphas)
        positions = torch.arange(-extend, density * (count - 1) + extend + 1, dtype=torch.float64) / density
        index = torch.arange(count, dtype=torch.float64)
        return (
            _interpolate(positions, index, self.alphas.double()).float(),
            _interpolate(positions, index, self.factors.double()).float(),
        )


def _interpolate(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation of (xp, fp) at x, continued linearly past both ends."""
    xp, fp = xp.to(x.dtype), fp.to(x.dtype)
    segment = (torch.searchsorted(xp, x, right=True) - 1).clamp(0, len(xp) - 2)
    x0, x1, f0, f1 = xp[segment], xp[segment + 1], fp[segment], fp[segment + 1]
    return f0 + (x - x0) * (f1 - f0) / (x1 - x0)


@dataclass(frozen=True)
class AttributeResult:
    """The outcome of :func:`learn_attribute` for a batch.

    Attributes:
        ids: image ids, in batch order.
        method: the inversion method.
        transform: the transform's name.
        factors: a_0..a_{K-1}.
        alphas: ``[B, K]``, alpha_0 = 0 first.
        directions: ``[B, n_latent, style_dim]``.
        targets: T(x, a_k), ``[B, K, 3, H, W]``.
        reconstructions: the walk at the learned alphas from each image's fixed final draw,
            ``[B, K, 3, H, W]`` in [-1, 1]; NaN for failed images.
        states: per-image states: the method's tensors plus the direction, alphas and factors.
        loss_history: ``[steps run, B]``.
        status: ``"ok"`` or ``"failed"`` per image.
        messages: why an image failed, else ``""``.
        seconds: wall time.
        curve: the inversion's quality at log-spaced steps (its frame at alpha = 0), or None.
    """

    ids: tuple[str, ...]
    method: str
    transform: str
    factors: tuple[float, ...]
    alphas: torch.Tensor
    directions: torch.Tensor
    targets: torch.Tensor
    reconstructions: torch.Tensor
    states: tuple[InversionState, ...]
    loss_history: torch.Tensor
    status: tuple[str, ...]
    messages: tuple[str, ...]
    seconds: float
    curve: QualityCurve | None = None

    @classmethod
    @torch.no_grad()
    def of(
        cls, generator: Generator, result: InversionResult, targets: torch.Tensor, config: AttributeConfig
    ) -> AttributeResult:
        """The attribute's view of an :func:`invert` result: walks rendered from the saved states."""
        bad = ~torch.isfinite(targets).flatten(1).all(dim=1)
        clean = torch.where(bad[:, None, None, None], torch.zeros_like(targets), targets).float()
        observed = torch.stack([config.transform(clean, factor) for factor in config.factors], dim=1)
        edits = [AttributeEdit.of(state) for state in result.states]
        walks = torch.stack(
            [render_attribute(generator, state, edit.alphas) for state, edit in zip(result.states, edits)]
        )
        walks[[status != "ok" for status in result.status]] = math.nan
        return cls(
            ids=result.ids,
            method=config.latent.name,
            transform=config.transform.name,
            factors=config.factors,
            alphas=torch.stack([edit.alphas for edit in edits]).cpu(),
            directions=torch.stack([edit.direction for edit in edits]).cpu(),
            targets=observed.cpu(),
            reconstructions=walks.cpu(),
            states=result.states,
            loss_history=result.loss_history,
            status=result.status,
            messages=result.messages,
            seconds=result.seconds,
            curve=result.curve,
        )


@dataclass(frozen=True, kw_only=True)
class AttributeConfig(MethodConfig):
    """Attribute learning as a method :func:`sphinx.inversion.invert` runs: a latent method's
    inversion, plus a W+ direction and alphas per image.

    Attributes:
        name: ``attribute``.
        latent: the wrapped method, any with a W+ input; its stages, learning rates and loss
            weights are the attribute's.
        transform: T, a :class:`Transform` or its name (rotate, brightness, zoom, translate, hue).
        factors: a_0 < a_1 < ..., a_0 the transform's identity, e.g. ``(0, 22.5, 45)``.
        mono_weight: weight of :func:`monotonicity_hinge` (the authors' 0.5).
        margin: the hinge margin (the authors' 2).
        attribute_lr: constant Adam lr of the direction and alphas (the authors' 1e-3).
        learn_direction: False keeps each direction at its random start while the alphas and the
            inversion learn: the control that tells what learning the direction adds.
        fit_inversion: False keeps the inversion as it starts (a saved state: ``initial_states``)
            and learns only the direction and alphas, so the walk must carry the attribute by
            itself and the reconstruction stays the saved one's; the authors fit both (True).
    """

    name: str = "attribute"
    latent: MethodConfig
    transform: Transform | str
    factors: tuple[float, ...]
    mono_weight: float = MONO_WEIGHT
    margin: float = MARGIN
    attribute_lr: float = ATTRIBUTE_LR
    learn_direction: bool = True
    fit_inversion: bool = True

    def complete(self) -> None:
        if isinstance(self.transform, str):
            object.__setattr__(self, "transform", build_transform(self.transform))
        object.__setattr__(self, "factors", check_factors(self.transform, self.factors))

    def check(self) -> None:
        if not isinstance(self.latent, MethodConfig) or not self.latent.implementation.latent_inputs:
            name = getattr(self.latent, "name", self.latent)
            raise ConfigError(
                f"method {name} has no W+ input to learn an attribute in; use sphinx, its variants, "
                "w, wplus or wplus_noise"
            )
        if self.margin < 0:
            raise ConfigError(f"margin must be non-negative, got {self.margin}")
        if not 0 < self.attribute_lr < math.inf:
            raise ConfigError(f"attribute_lr must be positive, got {self.attribute_lr}")

    @property
    def implementation(self) -> type[AttributeLearning]:
        return AttributeLearning

    def check_batch_size(self, batch_size: int) -> None:
        self.latent.check_batch_size(batch_size)

    def check_generator(self, generator: Generator) -> None:
        self.latent.check_generator(generator)

    def options(self) -> dict[str, object]:
        return {
            "latent": {"name": self.latent.name, **self.latent.options()},
            "transform": self.transform.name,
            "factors": list(self.factors),
            "mono_weight": self.mono_weight,
            "margin": self.margin,
            "attribute_lr": self.attribute_lr,
            "learn_direction": self.learn_direction,
            "fit_inversion": self.fit_inversion,
        }

    def step_counts(self) -> dict[str, int]:
        return self.latent.step_counts()

    def without_lpips(self) -> AttributeConfig:
        return dataclasses.replace(self, latent=self.latent.without_lpips())


class AveragedOverFactors:
    """The latent method's reconstruction terms averaged over the K transformed targets, as the authors do."""

    def __init__(self, parts: list[ReconstructionLoss]) -> None:
        self.parts = parts
        self.lpips, self.perceptual = parts[0].lpips, parts[0].perceptual

    def __call__(self, images: torch.Tensor, *, step: int, with_lpips: bool = True) -> dict[str, torch.Tensor]:
        """Terms of the K shifted renders ``[B, K, 3, H, W]``, each ``[B]``."""
        per_factor = [part(images[:, k], step=step, with_lpips=with_lpips) for k, part in enumerate(self.parts)]
        return {key: torch.stack([terms[key] for terms in per_factor]).mean(dim=0) for key in per_factor[0]}


class AttributeLearning(Method):
    """A latent method whose W+ is walked along a learned direction to the K transformed targets."""

    def __init__(self, generator: Generator, ids, config: AttributeConfig, *, seed: int) -> None:
        super().__init__(generator, ids, config, seed=seed)
        self.latent = config.latent.implementation(generator, ids, config.latent, seed=seed)
        self.direction = per_image_randn(
            (generator.n_latent, generator.style_dim), self.ids, seed, "attribute_direction", device=self.device
        ).requires_grad_(config.learn_direction)  # [B, L, d]
        self.learned = torch.zeros(
            len(self.ids), len(config.factors) - 1, device=self.device, requires_grad=True
        )  # alpha_1..alpha_{K-1}: [B, K-1]

    def alphas(self) -> torch.Tensor:
        """``[B, K]``, alpha_0 = 0 first."""
        return torch.cat([torch.zeros_like(self.learned[:, :1]), self.learned], dim=1)

    def stages(self) -> list[Stage]:
        learned = (self.direction, self.learned) if self.config.learn_direction else (self.learned,)
        attribute = ParamGroup(learned, self.config.attribute_lr, scheduled=False)
        fitted = lambda stage: stage.groups if self.config.fit_inversion else ()
        return [dataclasses.replace(stage, groups=(*fitted(stage), attribute)) for stage in self.latent.stages()]

    def objective(self, operator, observation: torch.Tensor, *, lpips, use_lpips: bool) -> AveragedOverFactors:
        with torch.no_grad():
            observed = [self.config.transform(observation, factor) for factor in self.config.factors]
        return AveragedOverFactors(
            [ReconstructionLoss(operator, target, lpips=lpips, use_lpips=use_lpips) for target in observed]
        )

    def render(self, stage: Stage, step: int, progress: float) -> torch.Tensor:
        inputs = shifted_inputs(self.latent.inputs(stage, step, progress), self.direction, self.alphas())
        return self.synthesize(inputs).unflatten(0, (len(self.ids), len(self.config.factors)))  # [B, K, 3, H, W]

    def regularization(self, stage: Stage, step: int, perceptual) -> dict[str, torch.Tensor]:
        hinge = monotonicity_hinge(self.learned, margin=self.config.margin)
        return {**self.latent.regularization(stage, step, perceptual), "monotonicity": self.config.mono_weight * hinge}

    def after_step(self, stage: Stage) -> None:
        self.latent.after_step(stage)

    @torch.no_grad()
    def render_final(self) -> torch.Tensor:
        """The inversion's own image: the walk's frame at alpha = 0."""
        return self.latent.render_final()

    def restore(self, states: Sequence[InversionState]) -> None:
        self.latent.restore(states)

    def state(self, index: int) -> dict[str, torch.Tensor]:
        return {
            **self.latent.state(index),
            DIRECTION_KEY: self.direction[index].detach().clone(),
            ALPHAS_KEY: self.alphas()[index].detach().clone(),
            FACTORS_KEY: torch.tensor(self.config.factors, dtype=torch.float64),
        }  # the factors exactly as given

    @property
    def state_config(self) -> MethodConfig:
        """The latent method's: a state with the attribute's tensors re-renders and edits as that method's."""
        return self.latent.config


def learn_attribute(
    generator: Generator,
    targets: torch.Tensor,
    ids: Sequence[object] | None = None,
    *,
    transform: Transform | str,
    factors: Sequence[float],
    method: MethodConfig | str = "sphinx",
    mono_weight: float = MONO_WEIGHT,
    margin: float = MARGIN,
    attribute_lr: float = ATTRIBUTE_LR,
    learn_direction: bool = True,
    fit_inversion: bool = True,
    **options,
) -> AttributeResult:
    """Learn one attribute direction per image jointly with its inversion, through :func:`invert`.

    Args:
        generator: frozen generator.
        targets: clean images ``[B, 3, R, R]`` in [-1, 1].
        ids: one unique id per image; default ``"0"``, ``"1"``, ...
        transform, factors, mono_weight, margin, attribute_lr, learn_direction, fit_inversion:
            see :class:`AttributeConfig` (``fit_inversion=False`` needs ``initial_states``).
        method: any method with a W+ input, as a config or a name: sphinx (default), sphinx_warm,
            sphinx_ps, sphinx_ps_pc, w, wplus, wplus_noise.
        **options: :func:`invert`'s own keywords (``seed``: the direction's initial draw comes
            from (seed, image id) too; ``lpips``, ``callback``, ``checkpoint``, ``execution``,
            ``record_curve``: the curve scores the inversion's own image, the walk's frame at
            alpha = 0; ``initial_states``: start each image's inversion from its saved state of
            the same method and generator); with a method name, the others are its
            hyperparameters (``steps``, ``lr``, ...).

    Returns:
        An :class:`AttributeResult`.

    Raises:
        ConfigError: options that cannot work, before any compute.
        CheckpointError: initial states of another method or generator.
        ImageError: targets of the wrong shape, type or range.
    """
    run = {key: options.pop(key) for key in INVERT_OPTIONS if key in options}
    latent = resolve_method(method, options)
    attribute = dict(transform=transform, factors=tuple(factors), mono_weight=mono_weight, margin=margin)
    if not fit_inversion and run.get("initial_states") is None:
        raise ConfigError("fit_inversion=False keeps the inversion as it starts: give initial_states to start from")
    learning = dict(attribute_lr=attribute_lr, learn_direction=learn_direction, fit_inversion=fit_inversion)
    config = AttributeConfig(latent=latent, **attribute, **learning)
    result = invert(generator, targets, ids, method=config, **run)
    return AttributeResult.of(generator, result, targets, config)


@torch.no_grad()
def render_attribute(
    generator: Generator, state: InversionState, alphas: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """Render a learned attribute's walk from the state's fixed final draw.

    Args:
        generator: the generator the state was made with.
        state: a state written by :func:`learn_attribute`.
        alphas: where to render, ``[F]`` (any values: between, at or beyond the learned ones).

    Returns:
        Frames ``[F, 3, H, W]`` in [-1, 1].
    """
    edit = AttributeEdit.of(state)
    inputs = state_inputs(generator, state)
    device = inputs.ws.device
    alphas = torch.as_tensor(alphas, dtype=torch.float32, device=device)[None]  # [1, F]
    return render_shifted(generator, inputs, edit.direction[None].to(device), alphas)[0].clamp(-1, 1)
