"""InversionModule: the thin Lightning layer over :func:`sphinx.inversion.invert`.

Each batch of images is one ``invert`` call inside ``test_step``. Per-image heads, latents and
noise live inside that call and are never parameters of this module, so DDP never averages
them across images; ranks only meet to sum the metric states at the end. The step returns the
batch's outcome, which :class:`sphinx.lit.callbacks.WriteImages` writes to the run dir.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import Metric

from sphinx.data.images import to_uint8
from sphinx.errors import RunInterrupted, SphinxError
from sphinx.inversion import StepReport, invert
from sphinx.inversion.batch_checkpoint import BatchCheckpoint
from sphinx.inversion.execution import Execution
from sphinx.inversion.methods import MethodConfig
from sphinx.inversion.objective import lpips_applies, pool_for_lpips
from sphinx.lit.loggers import keeps_pictures, log_pictures
from sphinx.metrics.image_quality import psnr, ssim
from sphinx.rundir.columns import SCORES
from sphinx.rundir.panels import comparison_grid, score_label
from sphinx.rundir.progress import progress_bar
from sphinx.rundir.signals import StopSignals
from sphinx.rundir.writer import BatchOutcome
from sphinx.utils.text import image_id_to_text

log = logging.getLogger(__name__)
LOSS_LOG_EVERY = 10
POSTFIX_EVERY_SECONDS = 0.5
PANEL_TILE = 128


def _finite_mean(values: torch.Tensor) -> float:
    """Mean of the finite entries (NaN: none), read on the host."""
    finite = values[torch.isfinite(values)]
    return float(finite.mean()) if finite.numel() else math.nan


class MeanAndSpread(Metric):
    """Mean and sample standard deviation of per-image values, summed across ranks."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("squares", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, values: torch.Tensor) -> None:
        values = values.detach().double().flatten()
        self.total += values.sum()
        self.squares += values.square().sum()
        self.count += values.numel()

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.total / self.count.clamp(min=1)
        variance = (self.squares - self.count * mean.square()) / (self.count - 1).clamp(min=1)
        return mean, variance.clamp(min=0).sqrt()


class InversionModule(pl.LightningModule):
    """Inverts each test batch, scores it and logs; its outcome goes to the image writer.

    Subclasses change what a batch computes (:meth:`compute`) and how it is scored (:meth:`_score`).

    Args:
        generator: the frozen generator.
        method: the method's config.
        degradation: the degradation applied in the loss.
        seed: run seed.
        lpips: the LPIPS network (loss and metric), or None without it.
        progress: show progress bars (rank 0).
        earlier: records of the images a resumed run already has, counted in the logged metrics.
        checkpoints: each batch's in-batch checkpoint, by its ids (None: none).
        stop: the process's SIGTERM/SIGINT handler; a signal stops the run at the next step.
        execution: how each step runs (see :class:`sphinx.inversion.execution.Execution`).
    """

    work = "inversion"  # what a crashed batch's message names

    def __init__(
        self,
        generator: nn.Module,
        *,
        method: MethodConfig,
        degradation,
        seed: int,
        lpips: nn.Module | None,
        progress: bool = True,
        earlier: Sequence[dict] = (),
        checkpoints: Callable[[list[str]], BatchCheckpoint] | None = None,
        stop: StopSignals | None = None,
        execution: Execution | None = None,
    ) -> None:
        super().__init__()
        self.generator = generator
        self.lpips = lpips
        self.method, self.degradation, self.seed = method, degradation, seed
        self.progress = progress
        self.metrics = nn.ModuleDict({name: MeanAndSpread() for name in SCORES})
        self.logged_steps = 0
        self._postfix_due = 0.0
        self._image_bar = None
        self.earlier = [record for record in earlier if record.get("status") == "ok"]
        self.checkpoints, self.stop = checkpoints, stop
        self.execution = execution

    def on_test_start(self) -> None:
        if self.stop is not None:
            self.stop.install()  # in place of Lightning's, which would finish the batch and exit 0
            self.stop.deferring = True
        if self.trainer.is_global_zero:
            # Metrics logged after a resume cover every image, as results.csv does.
            for name, metric in self.metrics.items():
                values = [r[name] for r in self.earlier if r.get(name) is not None]
                if values:
                    metric.update(torch.tensor(values, dtype=torch.float64, device=self.device))
        if self.progress and self.trainer.is_global_zero:
            total = len(self.trainer.test_dataloaders.sampler)
            self._image_bar = progress_bar(total=total, desc="images", unit="img", position=0)

    def test_step(self, batch: dict, batch_idx: int) -> dict:
        try:
            if self.stop is not None and self.stop.received:
                raise RunInterrupted(self.stop.received)
            outcome = BatchOutcome(list(batch["ids"]), batch["positions"], batch["images"], list(batch["failures"]))
            if outcome.ids:
                self._run_batch(outcome)
        except RunInterrupted:
            if self._image_bar is not None:  # closed now, so that the resume hint is the last line
                self._image_bar.close()
            raise
        if self._image_bar is not None:
            self._image_bar.update(len(batch["ids"]) + len(batch["failures"]))
        return {"outcome": outcome}

    def _run_batch(self, outcome: BatchOutcome) -> None:
        started = time.perf_counter()
        step_bar = self._step_bar()
        try:
            with torch.enable_grad():
                outcome.result = self.compute(outcome, callback=lambda r: self._on_step(r, step_bar))
        except Exception as error:  # one batch's crash must not lose the others' results
            ids = ", ".join(map(image_id_to_text, outcome.ids))
            if isinstance(error, SphinxError):  # a refusal that says what to do: one line, no traceback
                log.error("batch %s failed: %s", ids, error)
            else:
                log.exception("batch %s failed", ids)
            outcome.crashed = f"{self.work} crashed: {error}".splitlines()[0]
            return
        finally:
            if step_bar is not None:
                step_bar.close()
        outcome.seconds = (time.perf_counter() - started) / len(outcome.ids)
        self._score(outcome)

    def checkpoint(self, ids: list[str]) -> BatchCheckpoint | None:
        return self.checkpoints(ids) if self.checkpoints is not None else None

    def compute(self, outcome: BatchOutcome, *, callback: Callable[[StepReport], None]):
        """The batch's result: here its inversion."""
        return invert(
            self.generator,
            outcome.targets,
            outcome.ids,
            method=self.method,
            degradation=self.degradation,
            seed=self.seed,
            lpips=self.lpips,
            callback=callback,
            checkpoint=self.checkpoint(outcome.ids),
            execution=self.execution,
        )

    @torch.no_grad()
    def _score(self, outcome: BatchOutcome) -> None:
        result, targets = outcome.result, outcome.targets
        ok = torch.tensor([s == "ok" for s in result.status], device=targets.device)
        safe = torch.where(ok[:, None, None, None], result.reconstructions, targets)  # failed rows are NaN
        outcome.scores = {"psnr": psnr(safe, targets), "ssim": ssim(safe, targets), "lpips": None}
        if self.lpips is not None and lpips_applies(targets):
            outcome.scores["lpips"] = self.lpips(pool_for_lpips(safe), pool_for_lpips(targets))
        for name, values in outcome.scores.items():
            if values is not None and ok.any():
                self.metrics[name].update(values[ok])
        self._log_panel(outcome)

    def _step_bar(self):
        if not (self.progress and self.trainer.is_global_zero):
            return None
        return progress_bar(desc="steps", unit="step", position=1, leave=False)

    def _on_step(self, report: StepReport, bar) -> None:
        # Reading a step's tensors makes the host wait for the GPU: only when a value is shown or logged.
        log_now = bool(self.logger) and report.step % LOSS_LOG_EVERY == 0
        show_now = bar is not None and time.monotonic() >= self._postfix_due
        loss = _finite_mean(report.loss) if log_now or show_now else math.nan
        if bar is not None:
            if bar.total is None or report.step < bar.n:  # a batch's next run (an edit's control) starts over
                bar.reset(total=report.total_steps)
            if show_now:
                mse = _finite_mean(report.terms["mse"])
                # PSNR against the observation, from the MSE of [-1, 1] images (data range 2).
                observed_psnr = 10 * math.log10(4 / max(mse, 1e-12)) if math.isfinite(mse) else math.nan
                bar.set_postfix(stage=report.stage, loss=f"{loss:.4f}", psnr=f"{observed_psnr:.2f}", refresh=False)
                self._postfix_due = time.monotonic() + POSTFIX_EVERY_SECONDS
            bar.update(1)
        if log_now:
            self.logger.log_metrics({"inversion/loss": loss}, step=self.logged_steps)
            self.logged_steps += 1

    def _log_panel(self, outcome: BatchOutcome) -> None:
        """The run's comparison panel (titled columns, scored rows) of this batch, for the logger."""
        if not keeps_pictures(self.logger):
            return
        result, scores, count = outcome.result, outcome.scores, len(outcome.ids)
        reconstructions = [to_uint8(torch.nan_to_num(result.reconstructions[i], nan=-1.0)) for i in range(count)]
        observations = (
            None
            if self.degradation.name == "none"
            else [to_uint8(result.observation_previews[i]) for i in range(count)]
        )
        labels = [
            score_label(
                result.ids[i], *(float(scores[m][i]) if result.status[i] == "ok" else None for m in ("psnr", "ssim"))
            )
            for i in range(count)
        ]
        panel = comparison_grid(
            [to_uint8(outcome.targets[i]) for i in range(count)],
            reconstructions,
            observations=observations,
            row_labels=labels,
            tile_side=PANEL_TILE,
        )
        caption = ", ".join(map(image_id_to_text, result.ids))
        log_pictures(self.logger, "panels", [panel], [caption], step=self.logged_steps)

    def on_test_end(self) -> None:
        if self.stop is not None:
            self.stop.deferring = False  # between batches no state is at stake: stop at once

    def on_test_epoch_end(self) -> None:
        if self._image_bar is not None:
            self._image_bar.close()
        for name, metric in self.metrics.items():
            if name == "lpips" and self.lpips is None:
                continue
            with warnings.catch_warnings():  # a rank may have had no image to update with
                warnings.simplefilter("ignore", UserWarning)
                mean, spread = metric.compute()  # every rank takes part in the reduction
            # After compute, `count` is this rank's own again; an idle rank must still log (a
            # collective), so every rank decides on the total.
            if self.trainer.strategy.reduce(metric.count.clone(), reduce_op="sum") > 0:
                # Already reduced over ranks, so every rank logs the same value.
                self.log(f"test/{name}", mean.float(), sync_dist=True)
                self.log(f"test/{name}_std", spread.float(), sync_dist=True)
