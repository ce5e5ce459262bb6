"""Attribute learning: one W+ direction per image whose walk reproduces a transform.

Following the authors' ``Attribute_learner`` (shared METHODS.md, section 1.8): for targets
T(x, a_0..a_{K-1}), each image's inversion parameters are optimized together with a direction
D ``[n_latent, style_dim]`` and scalars alpha_1..alpha_{K-1} (alpha_0 = 0), so that
``G(w + alpha_k * D / ||D||_row)`` reconstructs T(x, a_k) for every k. The loss is the method's
reconstruction loss averaged over k plus ``mono_weight`` times a hinge that keeps the alphas
increasing by at least ``margin``. Batched and seeded per image like :func:`invert`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from sphinx.editing.latents import check_state_generator, render_shifted, state_inputs
from sphinx.editing.transforms import Transform, build_transform, check_factors
from sphinx.errors import CheckpointError, ConfigError
from sphinx.generators.checkpoints import describe
from sphinx.generators.stylegan2 import Generator
from sphinx.inversion.loop import (Failures, StepReport, _check_targets, default_lpips, descend, resolve_method,
                                   schedule, stage_optimizer, step_labels, weighted_loss)
from sphinx.inversion.methods.base import MethodConfig, ParamGroup
from sphinx.inversion.objective import ReconstructionLoss
from sphinx.inversion.state import InversionState
from sphinx.seeding import per_image_randn

DIRECTION_KEY = "attribute.direction"
ALPHAS_KEY = "attribute.alphas"
FACTORS_KEY = "attribute.factors"
MONO_WEIGHT = 0.5  # the authors' --mono_weight
MARGIN = 2.0  # the authors' hinge margin
ATTRIBUTE_LR = 1e-3  # the authors' attribute parameter group: Adam's default lr, never ramped


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
            raise CheckpointError(f"inversion state of image {state.image_id} holds no learned attribute; "
                                  "make one with learn_attribute (python -m sphinx.edit edit=attribute_rotate)")
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
        return (_interpolate(positions, index, self.alphas.double()).float(),
                _interpolate(positions, index, self.factors.double()).float())


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


def check_attribute_options(*, mono_weight: float, margin: float, attribute_lr: float) -> None:
    if mono_weight < 0 or margin < 0:
        raise ConfigError(f"mono_weight and margin must be non-negative, got {mono_weight} and {margin}")
    if not attribute_lr > 0:
        raise ConfigError(f"attribute_lr must be positive, got {attribute_lr}")


def learn_attribute(
    generator: Generator,
    targets: torch.Tensor,
    ids: Sequence[object] | None = None,
    *,
    transform: Transform | str,
    factors: Sequence[float],
    method: MethodConfig | str = "sphinx",
    seed: int = 0,
    lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    initial_states: Sequence[InversionState] | None = None,
    mono_weight: float = MONO_WEIGHT,
    margin: float = MARGIN,
    attribute_lr: float = ATTRIBUTE_LR,
    callback: Callable[[StepReport], None] | None = None,
    **overrides,
) -> AttributeResult:
    """Learn one attribute direction per image jointly with its inversion.

    Args:
        generator: frozen generator.
        targets: clean images ``[B, 3, R, R]`` in [-1, 1].
        ids: one unique id per image; default ``"0"``, ``"1"``, ...
        transform: a :class:`Transform` or its name (rotate, brightness, zoom, translate, hue).
        factors: a_0 < a_1 < ... with a_0 the transform's identity, e.g. ``(0, 22.5, 45)``.
        method: any method with a W+ input, as a config or a name: sphinx (default), sphinx_warm,
            sphinx_ps, sphinx_ps_pc, w, wplus, wplus_noise.
        seed: run seed; the direction's initial draw comes from (seed, image id).
        lpips: the perceptual distance ``(x, y) -> [B]``; built (LPIPS-VGG) when a stage needs it.
        initial_states: start each image's inversion from its saved state (same method and
            generator) instead of from scratch.
        mono_weight: weight of :func:`monotonicity_hinge` (0.5).
        margin: the hinge margin (2).
        attribute_lr: constant Adam lr of the direction and alphas (1e-3, the authors').
        callback: called with a :class:`StepReport` after every step.
        **overrides: with a method name, its hyperparameters (``steps``, ``lr``, ...).

    Returns:
        An :class:`AttributeResult`.

    Raises:
        ConfigError: options that cannot work, before any compute.
        CheckpointError: initial states of another method or generator.
        ImageError: targets of the wrong shape, type or range.
    """
    started = time.perf_counter()
    ids = [str(i) for i in (ids if ids is not None else range(targets.shape[0]))]
    transform = build_transform(transform) if isinstance(transform, str) else transform
    factors = check_factors(transform, factors)
    check_attribute_options(mono_weight=mono_weight, margin=margin, attribute_lr=attribute_lr)
    config = resolve_method(method, overrides)
    name = config.name
    if not config.implementation.latent_inputs:
        raise ConfigError(f"method {name} has no W+ input to learn an attribute in; use sphinx, its variants, "
                          "w, wplus or wplus_noise")
    config.check_batch_size(len(ids))
    bad_target = _check_targets(generator, targets, ids)
    if initial_states is not None:
        _check_initial_states(initial_states, generator, name, len(ids))

    device = generator.input.input.device
    targets = targets.to(device=device, dtype=torch.float32)
    clean = torch.where(bad_target[:, None, None, None].to(device), torch.zeros_like(targets), targets)
    with torch.no_grad():
        observed = torch.stack([transform(clean, factor) for factor in factors], dim=1)  # [B, K, 3, H, W]

    method_instance = config.implementation(generator, ids, config, seed=seed)
    if initial_states is not None:
        method_instance.restore([{k: v.to(device) for k, v in s.tensors.items()} for s in initial_states])
    direction = per_image_randn((generator.n_latent, generator.style_dim), ids, seed, "attribute_direction",
                                device=device).requires_grad_()  # [B, n_latent, style_dim]
    learned = torch.zeros(len(ids), len(factors) - 1, device=device, requires_grad=True)  # alpha_1.. [B, K-1]
    alphas = lambda: torch.cat([torch.zeros_like(learned[:, :1]), learned], dim=1)  # [B, K]

    stages = method_instance.stages()
    use_lpips = min(targets.shape[-2:]) >= 32
    if lpips is None and use_lpips and any(s.lpips_weight > 0 for s in stages):
        lpips = default_lpips(device)
    objectives = [ReconstructionLoss(observed[:, k], lpips=lpips, use_lpips=use_lpips) for k in range(len(factors))]
    attribute_group = ParamGroup((direction, learned), attribute_lr, scheduled=False)
    failures = Failures(bad_target.to(device), ids, describe_step=step_labels(stages))
    history: list[torch.Tensor] = []
    total_steps = sum(s.steps for s in stages)
    all_params = [p for s in stages for g in s.groups for p in g.params] + [direction, learned]
    global_step = 0
    for stage in stages:
        groups = (*stage.groups, attribute_group)
        optimizer = stage_optimizer(groups, all_params)
        for step in range(stage.steps):
            progress = step / stage.steps
            schedule(optimizer, stage, groups, progress)
            inputs = method_instance.inputs(stage, global_step, progress)
            images = render_shifted(generator, inputs, direction, alphas())  # [B, K, 3, H, W]
            per_factor = [objective(images[:, k], with_lpips=stage.lpips_weight > 0)
                          for k, objective in enumerate(objectives)]
            # The authors average each reconstruction term over the K targets.
            terms = {key: torch.stack([t[key] for t in per_factor]).mean(dim=0) for key in per_factor[0]}
            hinge = monotonicity_hinge(learned, margin=margin)
            penalty = method_instance.regularization(stage, global_step, objectives[0].perceptual)
            loss = weighted_loss(stage, terms, penalty) + mono_weight * hinge
            terms["monotonicity"] = hinge
            loss = failures.observe(loss, global_step)
            history.append(loss.detach())
            if callback is not None:
                callback(StepReport(stage.name, global_step, total_steps, loss.detach(),
                                    {k: v.detach() for k, v in terms.items()}))
            if failures.settle():  # every step: an attribute's steps are few and cheap
                break
            descend(optimizer, loss, failures.failed, all_params)
            method_instance.after_step(stage)
            global_step += 1
        if failures.failed.all():
            break
    for p in all_params:
        p.requires_grad_(False)

    failed, messages = failures.failed, failures.messages
    final_alphas = alphas().detach()
    with torch.no_grad():
        reconstructions = render_shifted(generator, method_instance.inputs(None, 0, 1.0), direction,
                                         final_alphas).clamp(-1, 1)
    failed |= ~torch.isfinite(reconstructions).flatten(1).all(dim=1)
    for index in failed.nonzero().flatten().tolist():
        messages[index] = messages[index] or "non-finite reconstruction"
    reconstructions[failed] = math.nan
    config_dict = config.options()
    factor_tensor = torch.tensor(factors, dtype=torch.float64)  # the factors exactly as given
    states = tuple(
        InversionState(name, image_id, seed, config_dict, describe(generator),
                       {**method_instance.state(index), DIRECTION_KEY: direction[index].detach().clone(),
                        ALPHAS_KEY: final_alphas[index].clone(), FACTORS_KEY: factor_tensor.clone()})
        for index, image_id in enumerate(ids))
    return AttributeResult(
        ids=tuple(ids), method=name, transform=transform.name, factors=factors, alphas=final_alphas.cpu(),
        directions=direction.detach().cpu(), targets=observed.cpu(), reconstructions=reconstructions.cpu(),
        states=states, loss_history=torch.stack(history) if history else torch.empty(0, len(ids)),
        status=tuple("failed" if bad else "ok" for bad in failed.tolist()), messages=tuple(messages),
        seconds=time.perf_counter() - started)


def _check_initial_states(states: Sequence[InversionState], generator: Generator, method: str, count: int) -> None:
    if len(states) != count:
        raise ConfigError(f"need one initial state per image: {count} images, {len(states)} states")
    for state in states:
        check_state_generator(state, generator)
        if state.method != method:
            raise CheckpointError(f"inversion state of image {state.image_id} was made with method {state.method}; "
                                  f"start method {method} from a state of the same method")


@torch.no_grad()
def render_attribute(generator: Generator, state: InversionState, alphas: Sequence[float] | torch.Tensor) -> torch.Tensor:
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
