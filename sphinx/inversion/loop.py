"""The one optimization loop every method runs through: :func:`invert`."""

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
from sphinx.generators.checkpoints import describe
from sphinx.generators.stylegan2 import Generator
from sphinx.inversion.checkpointing import BatchCheckpoint
from sphinx.inversion.curves import CurveRecorder, QualityCurve, log_spaced_steps
from sphinx.inversion.execution import Execution
from sphinx.inversion.methods import Method, MethodConfig, ParamGroup, Stage, method_config
from sphinx.inversion.objective import ReconstructionLoss
from sphinx.inversion.schedules import projector_lr_factor
from sphinx.inversion.state import InversionState
from sphinx.metrics.image_quality import psnr

log = logging.getLogger(__name__)

RANGE_TOLERANCE = 1e-3
ADAM_BETAS = (0.9, 0.999)


@dataclass(frozen=True)
class StepReport:
    """What a progress callback sees after each step.

    Attributes:
        stage: the stage's name.
        step: global step index (0-based, over all stages).
        total_steps: steps of all stages.
        loss: per-image total loss ``[B]`` of this step (NaN for failed images).
        terms: per-image loss terms (``mse``, ``lpips``, ``regularization``), ``[B]`` each.
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


def resolve_method(method: MethodConfig | str, options: dict) -> MethodConfig:
    """``invert``'s method: a built config as it is, or a registered name with its options."""
    if isinstance(method, MethodConfig):
        if options:
            raise ConfigError(f"options {', '.join(sorted(options))} given beside a built method config; set them "
                              "in the config, or pass the method by name")
        return method
    return method_config(method, **options)


def _check_targets(generator: Generator, targets: torch.Tensor, ids: Sequence[str]) -> torch.Tensor:
    """Shape and range checks; returns a per-image mask of targets with NaN or Inf."""
    expected = (3, generator.resolution, generator.resolution)
    if targets.ndim != 4 or tuple(targets.shape[1:]) != expected:
        raise ImageError(f"targets must be [B, {', '.join(map(str, expected))}] for this "
                         f"{generator.resolution} px generator, got {list(targets.shape)}; resize images "
                         "with sphinx.data before inverting")
    if not targets.is_floating_point():
        raise ImageError(f"targets must be float images in [-1, 1], got dtype {targets.dtype}")
    if len(ids) != targets.shape[0] or len(set(ids)) != len(ids):
        raise ImageError(f"need one unique id per target: {targets.shape[0]} targets, ids {list(ids)}")
    nonfinite = ~torch.isfinite(targets).flatten(1).all(dim=1)
    finite_values = targets[~nonfinite]
    if finite_values.numel() and (finite_values.min() < -1 - RANGE_TOLERANCE or finite_values.max() > 1 + RANGE_TOLERANCE):
        raise ImageError(f"targets must be in [-1, 1], got [{finite_values.min():.3f}, {finite_values.max():.3f}]; "
                         "map [0, 1] images with x * 2 - 1")
    return nonfinite


def _build_degradation(degradation: Degradation | str | None) -> Degradation:
    if degradation is None:
        return NoDegradation()
    if isinstance(degradation, str):
        return build_degradation(degradation)
    return degradation


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
            ``wplus``, ``wplus_noise`` or ``pti``, with its hyperparameters as ``**overrides``.
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
            holds this very batch (see :mod:`sphinx.inversion.checkpointing`); None: never.
        execution: how steps run (host checks, whole-batch CPU arithmetic, compilation,
            bfloat16); see :class:`sphinx.inversion.execution.Execution`. Default: exact float32.
        **overrides: with a method name, any of its hyperparameters (``steps``, ``lr``,
            ``lpips_weight``, ``mse_weight``, ...); see the method's config class.

    Returns:
        An :class:`InversionResult`.

    Raises:
        ConfigError: options that cannot work, before any compute.
        ImageError: targets of the wrong shape, type or range.
        RunInterrupted: a stop was requested through ``checkpoint``; the state is saved.
    """
    started = time.perf_counter()
    execution = execution if execution is not None else Execution()
    ids = [str(i) for i in (ids if ids is not None else range(targets.shape[0]))]
    config = resolve_method(method, overrides)
    config.check_batch_size(len(ids))
    degradation = _build_degradation(degradation)
    image_shape = (3, generator.resolution, generator.resolution)
    degradation.validate(image_shape)
    bad_target = _check_targets(generator, targets, ids)

    device = generator.input.input.device
    targets = targets.to(device=device, dtype=torch.float32)
    clean = torch.where(bad_target[:, None, None, None].to(device), torch.zeros_like(targets), targets)
    operator = degradation.bind(ids, image_shape=image_shape, seed=seed, device=device)
    observation = operator.observe(clean)

    method_instance = config.implementation(generator, ids, config, seed=seed)
    method_instance.synthesis = execution.synthesis(generator)
    stages = method_instance.stages()
    use_lpips = operator.is_image and min(observation.shape[-2:]) >= 32
    if lpips is None and use_lpips and any(s.lpips_weight > 0 for s in stages):
        lpips = default_lpips(device)
    elif any(s.lpips_weight > 0 for s in stages) and not use_lpips:
        log.info("LPIPS skipped: the %s observation is not an image of at least 32 px; MSE only",
                 type(degradation).__name__)

    objective = ReconstructionLoss(observation, lpips=execution.perceptual(lpips, device), use_lpips=use_lpips)
    failures = Failures(bad_target.to(device), ids, describe_step=step_labels(stages))
    history: list[torch.Tensor] = []
    total_steps = sum(s.steps for s in stages)
    all_params = [p for s in stages for g in s.groups for p in g.params]
    recorder = CurveRecorder(clean, steps=log_spaced_steps(total_steps), lpips=lpips) if record_curve else None
    global_step = 0
    identity = {"ids": list(ids), "method": config.name, "config": config.options(), "seed": seed,
                "degradation": type(degradation).__name__}
    if execution.changes_rounding():
        identity["execution"] = execution.changes_rounding()
    resume = checkpoint.restore(identity, all_params) if checkpoint is not None else None
    if resume is not None:
        global_step, history = resume.global_step, [h.to(device) for h in resume.records["history"]]
        failures.restore(resume.records)
        if recorder is not None and "curve" in resume.records:
            recorder.restore(resume.records["curve"])
    first_global_step = global_step
    halted = False
    with execution.batch_arithmetic():
        for stage_index, stage in enumerate(stages):
            if halted or resume is not None and stage_index < resume.stage:
                continue
            stage_start = sum(s.steps for s in stages[:stage_index])
            optimizer = stage_optimizer(stage.groups, all_params, fused=execution.fused_adam(device))
            first_step = 0
            early_stop = EarlyStop(stage, device) \
                if stage.lpips_stop is not None and stage.lpips_weight > 0 and objective.lpips is not None else None
            if resume is not None and stage_index == resume.stage:
                optimizer.load_state_dict(resume.optimizer)
                first_step = resume.step
                if early_stop is not None:
                    early_stop.restore(resume.records)
            stage_rows = len(history) - first_step  # history rows before this stage's first step
            for step in range(first_step, stage.steps):
                execution.begin_step(device)
                progress = step / stage.steps
                schedule(optimizer, stage, stage.groups, progress)
                with execution.autocast(device):
                    images = method_instance.render(stage, global_step, progress)
                if recorder is not None and recorder.wants(global_step):
                    reported = images if method_instance.renders_reported_image(stage) else method_instance.render_final()
                    recorder.record(global_step, reported, failures.failed)
                terms = objective(operator(images, step=global_step), with_lpips=stage.lpips_weight > 0)
                loss = weighted_loss(stage, terms, method_instance.regularization(stage, global_step, objective.perceptual))
                loss = failures.observe(loss, global_step)
                history.append(loss.detach())
                if callback is not None:
                    callback(StepReport(stage.name, global_step, total_steps, loss.detach(),
                                        {k: v.detach() for k, v in terms.items()}))
                if early_stop is not None:
                    early_stop.observe(terms["lpips"], failures.failed, step)
                descend(optimizer, loss, failures.failed, all_params)
                method_instance.after_step(stage)
                if early_stop is not None:
                    early_stop.hold()
                global_step += 1
                if global_step % execution.check_every == 0 or step == stage.steps - 1:
                    # The host's only look at the flags: a halt found now is applied where it happened.
                    halt = _halt(failures, early_stop, stage_start=stage_start, first_global_step=first_global_step)
                    if halt is not None:
                        halted_at, all_failed = halt
                        del history[stage_rows + halted_at - stage_start + 1:]
                        if recorder is not None:
                            recorder.discard_after(halted_at)
                        if all_failed:
                            global_step, halted = halted_at, True
                        else:
                            log.info("stage %s stopped at step %d: LPIPS <= %g", stage.name, halted_at - stage_start,
                                     stage.lpips_stop)
                            global_step = stage_start + stage.steps
                        break
                if checkpoint is not None:
                    checkpoint.after_step(identity, stage=stage_index, step=step + 1, global_step=global_step,
                                          total_steps=total_steps, params=all_params, optimizer=optimizer,
                                          records={"history": history, **failures.records(),
                                                   **(early_stop.records() if early_stop is not None else {}),
                                                   **({"curve": recorder.state()} if recorder is not None else {})})
    for p in all_params:
        p.requires_grad_(False)

    reconstructions = method_instance.render_final().clamp(-1, 1)
    spread = _vicinity_spread(method_instance, clean, config)
    failures.settle()
    failed, messages = failures.failed, failures.messages
    failed |= ~torch.isfinite(reconstructions).flatten(1).all(dim=1)
    for index in failed.nonzero().flatten().tolist():
        messages[index] = messages[index] or "non-finite reconstruction"
    reconstructions[failed] = math.nan
    if recorder is not None:
        recorder.record(global_step, reconstructions, failed)
    if spread is not None:
        spread[failed] = math.nan
    states = tuple(InversionState(config.name, image_id, seed, config.options(), describe(generator),
                                  method_instance.state(index)) for index, image_id in enumerate(ids))
    return InversionResult(
        ids=tuple(ids), method=config.name, reconstructions=reconstructions.detach(), observations=observation.detach(),
        observation_previews=operator.preview(observation).detach(), states=states,
        loss_history=torch.stack(history) if history else torch.empty(0, len(ids)),
        status=tuple("failed" if bad else "ok" for bad in failed.tolist()), messages=tuple(messages),
        vicinity_spread=spread, seconds=time.perf_counter() - started,
        curve=recorder.curve() if recorder is not None else None)


@functools.lru_cache(maxsize=2)
def default_lpips(device: torch.device):
    """The LPIPS-VGG that ``invert`` uses when given none: built once per process and device,
    since building it reads the 528 MB VGG16 file."""
    from sphinx.metrics.lpips import LPIPS

    return LPIPS("vgg").to(device)


def _halt(failures: Failures, early_stop: EarlyStop | None, *, stage_start: int,
          first_global_step: int) -> tuple[int, bool] | None:
    """Where the stage must end, read from the device: ``(global step, every image failed)``, or None.

    Every image failed at the step where the last of them failed; the early stop at the step
    where it was met. The first to happen wins; on a tie the failure, which the loop used to
    check first.
    """
    candidates = []
    if failures.settle():
        last = failures.last_failure()
        candidates.append((last if last >= 0 else first_global_step, True))
    stopped = early_stop.stopped_step() if early_stop is not None else None
    if stopped is not None:
        candidates.append((stage_start + stopped, False))
    return min(candidates, key=lambda c: (c[0], not c[1])) if candidates else None


# --- one step's pieces, shared with sphinx.editing's attribute learner ---------------------

def stage_optimizer(groups: Sequence[ParamGroup], all_params: Sequence[torch.Tensor], *,
                    fused: bool = False) -> torch.optim.Adam:
    """Adam over a stage's groups; only their tensors collect gradients (``fused``: one kernel)."""
    stage_params = {id(p) for g in groups for p in g.params}
    for p in all_params:
        p.requires_grad_(id(p) in stage_params)
    return torch.optim.Adam([{"params": list(g.params), "lr": g.lr} for g in groups], betas=ADAM_BETAS,
                            **({"fused": True} if fused else {}))


def schedule(optimizer: torch.optim.Adam, stage: Stage, groups: Sequence[ParamGroup], progress: float) -> None:
    """Set each group's lr for this point of the stage (the projector ramp on scheduled groups)."""
    factor = projector_lr_factor(progress, rampup=stage.rampup, rampdown=stage.rampdown)
    for group, spec in zip(optimizer.param_groups, groups):
        group["lr"] = spec.lr * (factor if spec.scheduled else 1.0)


def weighted_loss(stage: Stage, terms: dict[str, torch.Tensor], penalty: torch.Tensor | None) -> torch.Tensor:
    """The stage's weighted reconstruction terms plus a per-image penalty, ``[B]``; the penalty
    is recorded in ``terms`` as ``regularization``."""
    loss = stage.mse_weight * terms["mse"]
    if "lpips" in terms:
        loss = loss + stage.lpips_weight * terms["lpips"]
    if penalty is not None:
        terms["regularization"] = penalty
        loss = loss + penalty
    return loss


def step_labels(stages: Sequence[Stage]) -> Callable[[int], str]:
    """``global step -> "step 5 (sphinx)"``: a step and the stage it belongs to."""
    def label(step: int) -> str:
        end = 0
        for stage in stages:
            end += stage.steps
            if step < end:
                return f"step {step} ({stage.name})"
        return f"step {step}"
    return label


class Failures:
    """Which images of a batch have failed, kept on the device: marking them never waits.

    The host learns of a failure only in :meth:`settle`, which writes its message (with the
    step it happened at) and logs it.

    Args:
        bad_target: ``[B]`` bool, images whose target holds NaN or Inf: failed from the start.
        ids: image ids, for the log.
        describe_step: ``global step -> "step 5 (sphinx)"``.
    """

    def __init__(self, bad_target: torch.Tensor, ids: Sequence[str], *, describe_step: Callable[[int], str]) -> None:
        self.failed = bad_target.clone()
        self.failed_at = torch.full(bad_target.shape, -1, dtype=torch.long, device=bad_target.device)  # [B]
        self.messages = ["target contains NaN or Inf" if bad else "" for bad in bad_target.tolist()]
        self.ids, self.describe_step = list(ids), describe_step

    def observe(self, loss: torch.Tensor, step: int) -> torch.Tensor:
        """Mark the images whose loss ``[B]`` is not finite as failed at ``step``; returns the
        loss with every failed image's entry NaN."""
        newly_failed = ~torch.isfinite(loss) & ~self.failed
        self.failed_at.masked_fill_(newly_failed, step)
        self.failed |= newly_failed
        return loss.masked_fill(self.failed, math.nan)

    def settle(self) -> bool:
        """Read the flags on the host and write each new failure's message; whether every image has failed."""
        for index, step in enumerate(self.failed_at.tolist()):
            if step >= 0 and not self.messages[index]:
                self.messages[index] = f"non-finite loss at {self.describe_step(step)}"
                log.warning("image %s failed: %s", self.ids[index], self.messages[index])
        return bool(self.failed.all())

    def last_failure(self) -> int:
        """The global step at which the last image failed in a step (-1: none did)."""
        return int(self.failed_at.max())

    def records(self) -> dict:
        """What a batch checkpoint keeps of them."""
        return {"failed": self.failed, "failed_at": self.failed_at, "messages": self.messages}

    def restore(self, records: dict) -> None:
        self.failed = records["failed"].to(self.failed.device)
        self.messages = list(records["messages"])
        if "failed_at" in records:  # checkpoints written before it was kept settled every step
            self.failed_at = records["failed_at"].to(self.failed_at.device)


class EarlyStop:
    """A stage's stop once every healthy image's LPIPS is at most ``stage.lpips_stop`` (PTI).

    It is decided on the device at every step, before the step's descent, and the host reads it
    only now and then. Meanwhile, from the step where it was met, :meth:`hold` keeps the
    parameters where they were before that step's descent, so that the outcome is the same as
    stopping at once.

    Args:
        stage: the stage, with its ``lpips_stop`` and the tensors it optimizes.
        device: where the flags live.
    """

    def __init__(self, stage: Stage, device: torch.device) -> None:
        self.threshold = stage.lpips_stop
        self.params = [p for group in stage.groups for p in group.params]
        self.before = [torch.empty_like(p) for p in self.params]
        self.stopped = torch.zeros((), dtype=torch.bool, device=device)
        self.stopped_at = torch.full((), -1, dtype=torch.long, device=device)  # stage step; -1: not yet

    @torch.no_grad()
    def observe(self, lpips: torch.Tensor, failed: torch.Tensor, step: int) -> None:
        """Decide, from this step's LPIPS ``[B]``, whether the stage stops at ``step``."""
        met = torch.where(failed, True, lpips <= self.threshold).all()
        self.stopped_at.masked_fill_(met & ~self.stopped, step)
        self.stopped |= met
        torch._foreach_copy_(self.before, self.params)

    @torch.no_grad()
    def hold(self) -> None:
        """Once stopped, put the parameters back to their values before this step's descent."""
        # p * 1 + b * 0 and p * 0 + b * 1 are exact: the parameters are untouched until the stop.
        stopped = self.stopped.to(self.params[0].dtype)
        torch._foreach_mul_(self.params, 1 - stopped)
        torch._foreach_add_(self.params, torch._foreach_mul(self.before, stopped))

    def stopped_step(self) -> int | None:
        """The stage step at which the stop was met, read on the host; None: not met."""
        step = int(self.stopped_at)
        return step if step >= 0 else None

    def records(self) -> dict:
        return {"early_stop": {"stopped": self.stopped, "stopped_at": self.stopped_at}}

    def restore(self, records: dict) -> None:
        if "early_stop" in records:
            self.stopped = records["early_stop"]["stopped"].to(self.stopped.device)
            self.stopped_at = records["early_stop"]["stopped_at"].to(self.stopped_at.device)


def descend(optimizer: torch.optim.Adam, loss: torch.Tensor, failed: torch.Tensor,
            params: Sequence[torch.Tensor]) -> None:
    """One Adam step on the sum of the healthy images' losses."""
    optimizer.zero_grad(set_to_none=True)
    # A failed image's (NaN) term is zeroed rather than masked out, so that no shape depends on data.
    loss.masked_fill(failed, 0).sum().backward()
    _zero_failed_gradients(params, failed)
    optimizer.step()


def _zero_failed_gradients(params: Sequence[torch.Tensor], failed: torch.Tensor) -> None:
    """A failed image's gradients may be NaN; keep them out of its (unused) Adam state."""
    masks: dict[int, torch.Tensor] = {}
    for p in params:
        if p.grad is not None and p.grad.shape[0] == failed.shape[0]:
            if p.grad.ndim not in masks:
                masks[p.grad.ndim] = failed.view(-1, *(1,) * (p.grad.ndim - 1))
            p.grad.masked_fill_(masks[p.grad.ndim], 0)


@torch.no_grad()
def _vicinity_spread(method: Method, clean: torch.Tensor, config) -> torch.Tensor | None:
    draws = getattr(config, "spread_draws", 0)
    if not draws:
        return None
    scores = torch.stack([psnr(method.render_vicinity(k).clamp(-1, 1), clean) for k in range(draws)])
    return scores.std(dim=0)  # [B]
