"""The one optimization loop every method runs through: :func:`invert`.

Inversion, restoration and attribute learning (:mod:`sphinx.editing.attribute`) are methods
that this loop runs; the pieces of a step and the records it keeps are in
:mod:`sphinx.inversion.step`.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from sphinx.degradations import Degradation, NoDegradation, build_degradation
from sphinx.errors import ConfigError, ImageError
from sphinx.generators.loading import describe
from sphinx.generators.stylegan2 import Generator
from sphinx.inversion.batch_checkpoint import BatchCheckpoint, LoopPosition
from sphinx.inversion.curves import CurveRecorder, QualityCurve, log_spaced_steps
from sphinx.inversion.execution import Execution
from sphinx.inversion.methods import Method, MethodConfig, Stage, method_config
from sphinx.inversion.objective import lpips_applies
from sphinx.inversion.state import InversionState, check_state_generator
from sphinx.inversion.step import (
    EarlyStop,
    Failures,
    LossHistory,
    descend,
    schedule,
    stage_optimizer,
    step_labels,
    weighted_loss,
)
from sphinx.metrics.image_quality import psnr

log = logging.getLogger(__name__)

RANGE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class StepReport:
    """What a progress callback sees after each step.

    Attributes:
        stage: the stage's name.
        step: global step index (0-based, over all stages).
        total_steps: steps of all stages.
        loss: per-image total loss ``[B]`` of this step (NaN for failed images).
        terms: per-image loss terms (``mse``, ``lpips``, penalties by name), ``[B]`` each.
    """

    stage: str
    step: int
    total_steps: int
    loss: torch.Tensor
    terms: dict[str, torch.Tensor]


@dataclass(frozen=True)
class InversionResult:
    """The outcome of :func:`invert` for a batch.

    Attributes:
        ids: image ids, in batch order.
        method: registered method name.
        reconstructions: ``[B, 3, H, W]`` in [-1, 1], from each image's fixed final draw; NaN
            for failed images, so that they are never taken for valid output.
        observations: ``y = A(x)`` of the clean targets, ``[B, ...]``.
        observation_previews: pictures of the observations, ``[B, 3, H, W]`` in [-1, 1].
        states: per-image states (re-render with :func:`sphinx.inversion.render_state`).
        loss_history: per-step, per-image total loss ``[steps run, B]``.
        status: ``"ok"`` or ``"failed"`` per image.
        messages: why an image failed (with the step), else ``""``.
        vicinity_spread: per-image std of PSNR over fresh draws (SPHInX), else None.
        seconds: wall time of the call.
        curve: each image's quality at log-spaced steps, or None when not recorded.
    """

    ids: tuple[str, ...]
    method: str
    reconstructions: torch.Tensor
    observations: torch.Tensor
    observation_previews: torch.Tensor
    states: tuple[InversionState, ...]
    loss_history: torch.Tensor
    status: tuple[str, ...]
    messages: tuple[str, ...]
    vicinity_spread: torch.Tensor | None
    seconds: float
    curve: QualityCurve | None = None


def invert(
    generator: Generator,
    targets: torch.Tensor,
    ids: Sequence[object] | None = None,
    *,
    method: MethodConfig | str = "sphinx",
    degradation: Degradation | str | None = None,
    seed: int = 0,
    lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    callback: Callable[[StepReport], None] | None = None,
    record_curve: bool = True,
    checkpoint: BatchCheckpoint | None = None,
    execution: Execution | None = None,
    initial_states: Sequence[InversionState] | None = None,
    **overrides,
) -> InversionResult:
    """Invert a batch of images into a frozen generator.

    Every image is optimized in the same generator pass, but its parameters, random draws and
    gradients are its own: the loss is the sum of per-image losses, and all randomness is seeded
    from (seed, image id). A result therefore does not depend on batch size, composition, order,
    or the number of processes.

    Args:
        generator: frozen generator (see :func:`sphinx.generators.load_generator`).
        targets: clean images ``[B, 3, R, R]`` in [-1, 1], R the generator's resolution. Images
            holding NaN or Inf are marked failed; the others run.
        ids: one unique id per image (file names); default ``"0"``, ``"1"``, ...
        method: a method config (:func:`sphinx.inversion.methods.method_config`), or a registered
            name: ``sphinx`` (default), ``sphinx_warm``, ``sphinx_ps``, ``sphinx_ps_pc``, ``w``,
            ``wplus``, ``wplus_noise``, ``pti`` or ``ilo``, with its hyperparameters as ``**overrides``.
        degradation: the forward operator A applied to G's output in the loss (a
            :class:`sphinx.degradations.Degradation`, a name, or None for none). The targets'
            observation ``y = A(x)`` is what the loss sees.
        seed: run seed.
        lpips: the perceptual distance ``(x, y) -> [B]``; built (LPIPS-VGG, v0.1, once per
            process and device) when needed and not given.
        callback: called with a :class:`StepReport` after every step. Its tensors are still
            being computed on a GPU: reading them makes the host wait, so read them only to log.
        record_curve: score each image against its clean target at log-spaced steps
            (:mod:`sphinx.inversion.curves`); the result's ``curve``.
        checkpoint: saves the batch's optimization state while it runs and restores it when it
            holds this very batch (see :mod:`sphinx.inversion.batch_checkpoint`); None: never.
        execution: how steps run (host checks, whole-batch CPU arithmetic, compilation,
            bfloat16); see :class:`sphinx.inversion.execution.Execution`. Default: exact float32.
        initial_states: start each image from its saved state (same method and generator, one
            per image) instead of from scratch.
        **overrides: with a method name, any of its hyperparameters (``steps``, ``lr``,
            ``lpips_weight``, ``mse_weight``, ...); see the method's config class.

    Returns:
        An :class:`InversionResult`.

    Raises:
        ConfigError: options that cannot work, before any compute.
        ImageError: targets of the wrong shape, type or range.
        CheckpointError: initial states of another method or generator.
        RunInterrupted: a stop was requested through ``checkpoint``; the state is saved.
    """
    started = time.perf_counter()
    execution = execution if execution is not None else Execution()

    # Check and bind: whatever can be refused is refused here, before any compute.
    ids = [str(i) for i in (ids if ids is not None else range(targets.shape[0]))]
    config = resolve_method(method, overrides)
    config.check_batch_size(len(ids))
    config.check_generator(generator)
    if degradation is None:
        degradation = NoDegradation()
    elif isinstance(degradation, str):
        degradation = build_degradation(degradation)
    degradation.validate((3, generator.resolution, generator.resolution))
    bad_target = _check_targets(generator, targets, ids)
    if initial_states is not None:
        if len(initial_states) != len(ids):
            raise ConfigError(f"need one initial state per image: {len(ids)} images, {len(initial_states)} states")
        for state in initial_states:
            check_state_generator(state, generator)
    batch = _Batch(
        generator, targets, bad_target, ids, config, degradation, seed, lpips, execution, record_curve, initial_states
    )

    # Resume: a checkpoint of this very batch puts parameters, Adam and records back where they were.
    position = checkpoint.restore(batch.identity, batch.params) if checkpoint is not None else None
    if position is not None:
        batch.resume(position)

    # Stages: each runs to its end, or to where every image failed or its early stop was met.
    with execution.batch_arithmetic():
        for index, stage in enumerate(batch.stages):
            if position is not None and index < position.stage:
                continue
            resumed = position if position is not None and index == position.stage else None
            if batch.run_stage(index, stage, resumed=resumed, callback=callback, checkpoint=checkpoint):
                break

    # Final render and states: failed images come out NaN, never as valid output.
    return batch.finish(seconds_since=started)


def resolve_method(method: MethodConfig | str, options: dict) -> MethodConfig:
    """``invert``'s method: a built config as it is, or a registered name with its options."""
    if isinstance(method, MethodConfig):
        if options:
            raise ConfigError(
                f"options {', '.join(sorted(options))} given beside a built method config; set them "
                "in the config, or pass the method by name"
            )
        return method
    return method_config(method, **options)


@functools.lru_cache(maxsize=2)
def default_lpips(device: torch.device):
    """The LPIPS-VGG that ``invert`` uses when given none: built once per process and device,
    since building it reads the 528 MB VGG16 file."""
    from sphinx.metrics.lpips import LPIPS

    return LPIPS("vgg").to(device)


class _Batch:
    """One batch's optimization: the method bound to its images, its objective and its records."""

    def __init__(
        self,
        generator: Generator,
        targets: torch.Tensor,
        bad_target: torch.Tensor,
        ids: list[str],
        config: MethodConfig,
        degradation: Degradation,
        seed: int,
        lpips,
        execution: Execution,
        record_curve: bool,
        initial_states: Sequence[InversionState] | None,
    ) -> None:
        self.ids, self.config, self.seed, self.execution = ids, config, seed, execution
        self.device = device = generator.input.input.device
        image_shape = (3, generator.resolution, generator.resolution)
        targets = targets.to(device=device, dtype=torch.float32)
        self.clean = torch.where(bad_target[:, None, None, None].to(device), torch.zeros_like(targets), targets)
        self.operator = degradation.bind(ids, image_shape=image_shape, seed=seed, device=device)
        self.observation = self.operator.observe(self.clean)

        self.method: Method = config.implementation(generator, ids, config, seed=seed)
        if initial_states is not None:
            self.method.restore(initial_states)  # first: a state of another method is refused before LPIPS loads
        self.method.synthesis = execution.synthesis(generator)
        self.stages: list[Stage] = self.method.stages()
        use_lpips = self.operator.is_image and lpips_applies(self.observation)
        if lpips is None and use_lpips and any(s.lpips_weight > 0 for s in self.stages):
            lpips = default_lpips(device)
        elif any(s.lpips_weight > 0 for s in self.stages) and not use_lpips:
            log.info(
                "LPIPS skipped: the %s observation is not an image of at least 32 px; MSE only",
                type(degradation).__name__,
            )
        self.objective = self.method.objective(
            self.operator, self.observation, lpips=execution.perceptual(lpips, device), use_lpips=use_lpips
        )

        self.total_steps = sum(s.steps for s in self.stages)
        # every optimized tensor once, in stage order (a group may serve several stages)
        self.params = list({id(p): p for s in self.stages for g in s.groups for p in g.params}.values())
        self.failures = Failures(bad_target.to(device), ids, describe_step=step_labels(self.stages))
        self.history = LossHistory(device)
        self.recorder = (
            CurveRecorder(
                self.clean, steps=log_spaced_steps(self.total_steps), lpips=lpips if lpips_applies(self.clean) else None
            )
            if record_curve
            else None
        )
        self.records = [self.history, self.failures, *([self.recorder] if self.recorder is not None else [])]
        self.records += self.method.loop_records()
        self.global_step = self.first_step = 0
        self.identity = {
            "ids": list(ids),
            "method": config.name,
            "config": config.options(),
            "seed": seed,
            "degradation": type(degradation).__name__,
        }
        if execution.changes_rounding():
            self.identity["execution"] = execution.changes_rounding()

    def resume(self, position: LoopPosition) -> None:
        self.global_step = self.first_step = position.global_step
        for record in self.records:
            record.restore(position.records)

    def run_stage(
        self, index: int, stage: Stage, *, resumed: LoopPosition | None, callback, checkpoint: BatchCheckpoint | None
    ) -> bool:
        """Run a stage's steps; returns whether the optimization ends here (every image failed)."""
        method, execution, device = self.method, self.execution, self.device
        stage_start = sum(s.steps for s in self.stages[:index])
        optimizer = stage_optimizer(stage.groups, self.params, fused=execution.fused_adam(device))
        early_stop = (
            EarlyStop(stage, stage_start=stage_start, device=device)
            if stage.lpips_stop is not None and stage.lpips_weight > 0 and self.objective.lpips is not None
            else None
        )
        records = [*self.records, *([early_stop] if early_stop is not None else [])]
        first_step = 0
        if resumed is not None:
            optimizer.load_state_dict(resumed.optimizer)
            first_step = resumed.step
            if early_stop is not None:
                early_stop.restore(resumed.records)
        for step in range(first_step, stage.steps):
            execution.begin_step(device)
            progress = step / stage.steps
            schedule(optimizer, stage, progress)
            with execution.autocast(device):
                images = method.render(stage, self.global_step, progress)
            if self.recorder is not None and self.recorder.wants(self.global_step):
                reported = images if method.renders_reported_image(stage) else method.render_final()
                self.recorder.record(self.global_step, reported, self.failures.failed)
            terms = self.objective(images, step=self.global_step, with_lpips=stage.lpips_weight > 0)
            penalties = method.regularization(stage, self.global_step, self.objective.perceptual)
            loss = self.failures.observe(weighted_loss(stage, terms, penalties), self.global_step)
            self.history.append(self.global_step, loss)
            if callback is not None:
                callback(
                    StepReport(
                        stage.name,
                        self.global_step,
                        self.total_steps,
                        loss.detach(),
                        {k: v.detach() for k, v in terms.items()},
                    )
                )
            if early_stop is not None:
                early_stop.observe(terms["lpips"], self.failures.failed, step)
            descend(optimizer, loss, self.failures.failed, self.params)
            method.after_step(stage)
            if early_stop is not None:
                early_stop.hold()
            self.global_step += 1
            if self.global_step % execution.check_every == 0 or step == stage.steps - 1:
                # The host's only look at the flags: a halt found now is applied where it happened.
                halt = self._halt(early_stop)
                if halt is not None:
                    halted_at, every_image_failed = halt
                    for record in records:
                        record.discard_after(halted_at)
                    if every_image_failed:
                        self.global_step = halted_at
                        return True
                    log.info(
                        "stage %s stopped at step %d: LPIPS <= %g",
                        stage.name,
                        halted_at - stage_start,
                        stage.lpips_stop,
                    )
                    self.global_step = stage_start + stage.steps
                    return False
            if checkpoint is not None:
                checkpoint.after_step(
                    self.identity,
                    stage=index,
                    step=step + 1,
                    global_step=self.global_step,
                    total_steps=self.total_steps,
                    params=self.params,
                    optimizer=optimizer,
                    records={k: v for record in records for k, v in record.records().items()},
                )
        return False

    def _halt(self, early_stop: EarlyStop | None) -> tuple[int, bool] | None:
        """Where the stage must end, read from the device: ``(global step, every image failed)``, or None.

        Every image failed at the step where the last of them failed; the early stop at the step
        where it was met. The first to happen wins; on a tie the failure.
        """
        candidates = []
        failed_at = self.failures.halt_step(self.first_step)
        if failed_at is not None:
            candidates.append((failed_at, True))
        stopped_at = early_stop.halt_step() if early_stop is not None else None
        if stopped_at is not None:
            candidates.append((stopped_at, False))
        return min(candidates, key=lambda c: (c[0], not c[1])) if candidates else None

    @torch.no_grad()
    def finish(self, *, seconds_since: float) -> InversionResult:
        for p in self.params:
            p.requires_grad_(False)
        reconstructions = self.method.render_final().clamp(-1, 1)
        spread = _vicinity_spread(self.method, self.clean)
        self.failures.settle()
        self.failures.mark_unfinished(reconstructions)
        failed = self.failures.failed
        reconstructions[failed] = math.nan
        if self.recorder is not None:
            self.recorder.record(self.global_step, reconstructions, failed)
        if spread is not None:
            spread[failed] = math.nan
        return InversionResult(
            ids=tuple(self.ids),
            method=self.config.name,
            reconstructions=reconstructions.detach(),
            observations=self.observation.detach(),
            observation_previews=self.operator.preview(self.observation).detach(),
            states=self._states(),
            loss_history=self.history.stacked(len(self.ids)),
            status=tuple("failed" if bad else "ok" for bad in failed.tolist()),
            messages=tuple(self.failures.messages),
            vicinity_spread=spread,
            seconds=time.perf_counter() - seconds_since,
            curve=self.recorder.curve() if self.recorder is not None else None,
        )

    def _states(self) -> tuple[InversionState, ...]:
        label, generator = self.method.state_config, describe(self.method.generator)
        return tuple(
            InversionState(label.name, image_id, self.seed, label.options(), generator, self.method.state(index))
            for index, image_id in enumerate(self.ids)
        )


def _check_targets(generator: Generator, targets: torch.Tensor, ids: Sequence[str]) -> torch.Tensor:
    """Shape and range checks; returns a per-image mask of targets with NaN or Inf."""
    expected = (3, generator.resolution, generator.resolution)
    if targets.ndim != 4 or tuple(targets.shape[1:]) != expected:
        raise ImageError(
            f"targets must be [B, {', '.join(map(str, expected))}] for this "
            f"{generator.resolution} px generator, got {list(targets.shape)}; resize images "
            "with sphinx.data before inverting"
        )
    if not targets.is_floating_point():
        raise ImageError(f"targets must be float images in [-1, 1], got dtype {targets.dtype}")
    if len(ids) != targets.shape[0] or len(set(ids)) != len(ids):
        raise ImageError(f"need one unique id per target: {targets.shape[0]} targets, ids {list(ids)}")
    nonfinite = ~torch.isfinite(targets).flatten(1).all(dim=1)
    finite_values = targets[~nonfinite]
    if finite_values.numel() and (
        finite_values.min() < -1 - RANGE_TOLERANCE or finite_values.max() > 1 + RANGE_TOLERANCE
    ):
        raise ImageError(
            f"targets must be in [-1, 1], got [{finite_values.min():.3f}, {finite_values.max():.3f}]; "
            "map [0, 1] images with x * 2 - 1"
        )
    return nonfinite


@torch.no_grad()
def _vicinity_spread(method: Method, clean: torch.Tensor) -> torch.Tensor | None:
    draws = getattr(method.config, "spread_draws", 0)
    if not draws:
        return None
    scores = torch.stack([psnr(method.render_vicinity(k).clamp(-1, 1), clean) for k in range(draws)])
    return scores.std(dim=0)  # [B]
