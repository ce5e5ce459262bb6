"""The one entry wrapper of ``sphinx.run``, ``sphinx.edit`` and ``sphinx.train``, and their jobs.

:func:`hydra_entry` turns a job into a Hydra main: every sphinx error is printed once, on
stderr, with exit status 2; a stop by SIGTERM or SIGINT prints how to resume and exits with
the shell's status for that signal. :func:`run_job` is a ``sphinx.run`` or ``sphinx.edit``
job: build and check everything (:func:`sphinx.build.build_job`), hold the run dir against a
second job (:mod:`sphinx.rundir.lock`), refuse a changed rerun, invert or edit the pending images
under Lightning with stop signals and in-batch checkpoints, then write the run's tables. :func:`train_job` trains a prior.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from sphinx.configs import check_group_choices, config_dir
from sphinx.errors import ConfigError, OutputError, RunInterrupted, SphinxError
from sphinx.rundir.signals import StopSignals, exit_status, hand_over
from sphinx.utils.text import one_line

if TYPE_CHECKING:
    from sphinx.build import Job

log = logging.getLogger("sphinx")
MULTIRUN_DDP = (
    "a Hydra multirun cannot launch Lightning DDP (its ranks would re-run the sweep); run each configuration "
    "as its own job, or use the submitit launcher"
)


def hydra_entry(entry_point: str, config_name: str, job: Callable[[DictConfig], object]) -> Callable[[], None]:
    """A ``hydra.main`` over ``conf/<entry_point>/<config_name>.yaml`` that runs ``job(cfg)``."""

    @hydra.main(config_path=config_dir(entry_point), config_name=config_name, version_base="1.3")
    def main(cfg: DictConfig) -> None:
        _quiet_third_parties()
        try:
            job(cfg)
        except SphinxError as error:
            # once, on stderr: logging it too would print it a second time through Hydra's console handler
            _refuse(str(error))
        except RunInterrupted as stopped:
            saved = "; the batch in flight was saved" if stopped.saved is not None else ""
            print(
                f"stopped by {stopped.signal_name}{saved}; to resume, rerun the same command with "
                f"hydra.run.dir={HydraConfig.get().runtime.output_dir}",
                file=sys.stderr,
                flush=True,
            )
            hand_over(stopped.signal_name)  # a scheduler's requeue (submitit), which exits, if one waits
            sys.exit(exit_status(stopped.signal_name))

    def checked_main() -> None:
        try:
            check_group_choices(entry_point, sys.argv[1:])
        except ConfigError as error:
            _refuse(str(error))
        main()

    return checked_main


def _quiet_third_parties() -> None:
    """Leave out what Lightning and torch print on every run that a sphinx user cannot act on:
    Lightning's tip to install its cloud logger, torch's deprecation of a class that Lightning
    still uses, and Lightning's remarks on how sphinx.train drives it."""
    for message in _UNACTIONABLE_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in str(record.msg)
    )


_UNACTIONABLE_WARNINGS = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    # sphinx.train: its step range has a length for the progress bar, and the frozen EMA copy stays in eval mode
    r"Your `IterableDataset` has `__len__` defined",
    r"Found \d+ module\(s\) in eval mode at the start of training",
)


class RunDirCheck(Callback):
    """A Hydra callback (``hydra.callbacks`` of each entry point's config) that refuses a run dir,
    or a sweep dir, that cannot be written: one line and exit status 2, before Hydra itself fails
    there with a traceback."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        _refuse_unwritable(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        _refuse_unwritable(config.hydra.sweep.dir, "hydra.sweep.dir")


def _refuse_unwritable(folder: str, key: str) -> None:
    path = Path(folder).absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):  # a folder that exists may still be read-only
            return
    except OSError as error:
        problem = error.strerror or type(error).__name__
    _refuse(f"{path}: cannot write there ({problem}); choose a writable folder with {key}=<folder>")


def _refuse(message: str) -> NoReturn:
    """End the command as every refusal does: one line on stderr, exit status 2."""
    print(f"error: {one_line(message)}", file=sys.stderr, flush=True)
    sys.exit(2)


def run_job(cfg: DictConfig, *, edit: bool = False) -> dict | None:
    """Invert (or, with ``edit``, edit) the pending images of ``cfg``'s data and write the run's tables.

    Returns:
        The run's summary on the first rank; None on the others.
    """
    from sphinx import build
    from sphinx.rundir.lock import RunDirLock

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    stop = StopSignals()
    stop.install()
    trainer_options = build.trainer_options(cfg)
    one_process = trainer_options.get("strategy") in (None, "auto") and trainer_options.get("devices") in (1, "1")
    # a submitit launcher runs each sweep point as its own job: DDP inside it is safe
    own_job = "submitit" in str(HydraConfig.get().launcher.get("_target_", ""))
    if HydraConfig.get().mode == RunMode.MULTIRUN and not one_process and not own_job:
        raise ConfigError(MULTIRUN_DDP)
    build.apply_threads(cfg)  # before anything computes
    job = build.build_job(cfg, edit=edit)
    # Lightning only now: it takes seconds to import, and a bad path or config fails above without it
    from pytorch_lightning.utilities import rank_zero_only

    first_rank = rank_zero_only.rank == 0  # the trainer does not exist yet; DDP ranks rerun this function
    # One job at a time in a run dir, from before it is accepted to its end; the other ranks of a
    # DDP job are the first rank's own processes.
    with RunDirLock(run_dir) if first_rank else contextlib.nullcontext():
        return _run_accepted(cfg, job, run_dir, stop, trainer_options, edit=edit, first_rank=first_rank)


def _run_accepted(
    cfg: DictConfig, job: Job, run_dir: Path, stop: StopSignals, trainer_options: dict, *, edit: bool, first_rank: bool
) -> dict | None:
    """:func:`run_job` with the run dir held: refuse another configuration, else remember this one
    (``run.json``, ``.hydra/``), invert or edit the pending images and write the run's tables."""
    import pytorch_lightning as pl
    from pytorch_lightning.utilities.exceptions import MisconfigurationException

    from sphinx import build
    from sphinx.generators.loading import describe
    from sphinx.inversion.batch_checkpoint import BatchCheckpoint
    from sphinx.lit.callbacks import WriteImages
    from sphinx.lit.datamodule import InversionDataModule
    from sphinx.lit.editing import EditModule
    from sphinx.lit.loggers import log_results
    from sphinx.lit.module import InversionModule
    from sphinx.rundir.fingerprint import check_resume
    from sphinx.rundir.writer import EditWriter, OutputWriter
    from sphinx.utils.files import remove_temporaries

    check_resume(
        run_dir,
        job.fingerprint,
        allow_change=bool(cfg.allow_config_change),
        write=first_rank,
        config_files=_hydra_files(cfg),
    )
    if first_rank and (removed := remove_temporaries(run_dir)):  # left by writes that a kill cut short
        log.info("removed %d temporary files of interrupted writes in %s", removed, run_dir)
    method, degradation, ids = job.method, job.degradation, list(job.dataset.ids)
    names = dict(method=method.name, degradation=degradation.name, generator=str(cfg.generator.source))
    writer = (
        EditWriter(run_dir, **names, edit=job.edit, network=job.generator) if edit else OutputWriter(run_dir, **names)
    )
    if done := writer.done_ids():
        log.info("resuming in %s: %d of %d images already done", run_dir, len(done & set(ids)), len(ids))
    what = f"edit {job.edit.kind}" if edit else f"degradation {degradation.name}"
    generator = f"{cfg.generator.source} ({describe(job.generator)})"
    log.info("method %s, %s, %d images, generator %s", method.name, what, len(ids), generator)

    label = f"edit-{job.edit.kind}" if edit else degradation.name
    logger = build.build_logger(cfg, run_dir=run_dir, method=method.name, degradation=label)
    try:
        trainer = pl.Trainer(
            **trainer_options, logger=logger, default_root_dir=str(run_dir), callbacks=[WriteImages(writer)]
        )
    except (MisconfigurationException, ValueError, TypeError) as refused:  # Lightning's word on trainer.*
        raise ConfigError(f"cannot build the trainer: {' '.join(str(refused).split())}") from None
    checkpoints = lambda batch: BatchCheckpoint(
        writer.inflight_path(batch), every=int(cfg.checkpoint_every), stop_requested=stop.requested
    )
    earlier = [record for record in writer.records() if record["image"] in done]
    common = dict(
        method=method,
        degradation=degradation,
        seed=int(cfg.seed),
        lpips=job.lpips,
        earlier=earlier,
        progress=bool(cfg.trainer.get("enable_progress_bar", True)),
        checkpoints=checkpoints,
        stop=stop,
        execution=job.execution,
    )
    module = EditModule(job.generator, edit=job.edit, **common) if edit else InversionModule(job.generator, **common)
    data = InversionDataModule(job.dataset, batch_size=int(cfg.batch_size), done=done)
    with _resumable_after_output_errors(run_dir):
        trainer.test(module, datamodule=data, verbose=False)
    if stop.received:  # it came after the last step of the last batch: the records are complete
        raise RunInterrupted(stop.received)
    trainer.strategy.barrier()
    if not trainer.is_global_zero:
        return None
    rows = writer.morph_pairs(ids) if edit and job.edit.kind == "morph" else None
    data_name = str(cfg.data.path) if cfg.data.get("_target_", "").endswith("ImageFolder") else "bundled samples"
    config = OmegaConf.to_container(cfg, resolve=True)
    with _resumable_after_output_errors(run_dir):
        summary = writer.finalize(
            config=config, experiment=cfg.experiment_name, data=data_name, steps=method.step_counts(), rows=rows
        )
    log_results(logger, writer.run_dir / "results.csv", summary)
    _print_summary(summary, run_dir)
    return summary


def train_job(cfg: DictConfig) -> None:
    """Train a StyleGAN2 prior as ``cfg`` (``conf/train``) says; a killed run resumes from its checkpoint."""
    from sphinx.build import build_training

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    module, trainer = build_training(cfg, out_dir)
    trainer.fit(module)
    log.info(
        "step %d, %d images seen, %.0f s; checkpoint %s",
        module.step,
        module.step * module.batch_size,
        module.wall_seconds,
        out_dir / "checkpoints" / "last.pt",
    )


def _hydra_files(cfg: DictConfig) -> dict[str, str]:
    """``.hydra/``'s files for this job, as Hydra writes them (``hydra.output_subdir`` is null: sphinx
    writes them itself, once the run dir has accepted the job)."""
    hydra = HydraConfig.instance().cfg  # {"hydra": ...}
    return {
        "config.yaml": OmegaConf.to_yaml(cfg),
        "hydra.yaml": OmegaConf.to_yaml(hydra),
        "overrides.yaml": OmegaConf.to_yaml(hydra.hydra.overrides.task),
    }


@contextlib.contextmanager
def _resumable_after_output_errors(run_dir: Path) -> Iterator[None]:
    """A file the run cannot write (a full disk) ends it in one line that says how to go on: the
    images written before it are kept, and a rerun into the run dir skips them."""
    try:
        yield
    except OutputError as error:
        raise OutputError(
            f"{error}; the images finished before it are kept: then rerun the same command with "
            f"hydra.run.dir={run_dir} to go on"
        ) from None


def _print_summary(summary: dict, run_dir: Path) -> None:
    parts = [
        f"{name} {values['mean']:.4g} ± {values['std']:.2g}"
        for name, values in summary["metrics"].items()
        # per-factor and control columns stay in results.csv: the line shows the means
        if values["mean"] is not None and "@" not in name and not name.startswith("control_")
    ]
    if "edit" in summary:
        title = f"edit {summary['edit']} / {summary['method']}"
    else:
        steps = ", ".join(f"{count} {field.replace('_', ' ')}" for field, count in summary["steps"].items())
        title, parts = f"{summary['method']} / {summary['degradation']}", [steps, *parts]
    flagged = f" ({summary['flagged']} flagged)" if summary.get("flagged") else ""
    lines = [f"{title}: {summary['ok']} ok{flagged}, {summary['failed']} failed; {'; '.join(parts)}"]
    if "control" in summary:
        from sphinx.editing import build_transform
        from sphinx.rundir.control import describe_comparison

        transform = build_transform(summary["config"]["edit"]["transform"])
        lines.append(describe_comparison(transform.name, summary["control"], transform.unit))
    print(*lines, f"results: {run_dir / 'results.csv'}", sep="\n", flush=True)
