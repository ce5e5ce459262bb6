"""``python -m sphinx.run``: invert a set of images and report PSNR / SSIM / LPIPS.

Thin: compose (Hydra), build (``sphinx.build``), run (Lightning), write the run's tables.
``python -m sphinx.run --help`` lists the config groups.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from sphinx.configs import config_dir  # and its resolvers, for --cfg job --resolve
from sphinx.errors import ConfigError, RunInterrupted, SphinxError
from sphinx.rundir.signals import StopSignals, exit_status

log = logging.getLogger("sphinx.run")


def run(cfg: DictConfig) -> dict | None:
    """Build everything from ``cfg`` (checking it), invert the pending images, write the tables."""
    from sphinx import build
    from sphinx.utils.files import remove_temporaries
    from sphinx.generators.loading import describe
    from sphinx.rundir.fingerprint import check_resume, run_fingerprint
    from sphinx.rundir.writer import OutputWriter

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    stop = StopSignals()
    stop.install()
    build.check_run_options(cfg)
    options = build.trainer_options(cfg)
    if HydraConfig.get().mode == RunMode.MULTIRUN and (options.get("strategy") not in (None, "auto")
                                                        or options.get("devices") not in (1, "1")):
        raise ConfigError("a Hydra multirun cannot launch Lightning DDP (its ranks would re-run the sweep); "
                          "run each configuration as its own job, or use the submitit launcher")

    generator = build.build_generator(cfg)
    dataset = build.build_dataset(cfg, resolution=generator.resolution)
    degradation = build.build_degradation(cfg, resolution=generator.resolution)
    method = build.build_method(cfg, batch_size=cfg.batch_size)
    lpips = build.build_lpips(cfg)
    if lpips is None:
        method = method.without_lpips()
    generator_name = build.describe_generator(generator, cfg)
    # Lightning only now: it takes seconds to import, and a bad path or config fails above without it
    import pytorch_lightning as pl
    from pytorch_lightning.utilities import rank_zero_only

    from sphinx.lit.datamodule import InversionDataModule
    from sphinx.lit.loggers import log_results
    from sphinx.lit.module import InversionModule

    first_rank = rank_zero_only.rank == 0  # the trainer does not exist yet; DDP ranks rerun this function
    fingerprint = run_fingerprint(cfg, method=method, generator=describe(generator), lpips=lpips is not None)
    check_resume(run_dir, fingerprint, allow_change=bool(cfg.allow_config_change), write=first_rank)
    if first_rank:
        removed = remove_temporaries(run_dir)  # left by writes that a kill cut short
        if removed:
            log.info("removed %d temporary files of interrupted writes in %s", removed, run_dir)
    writer = OutputWriter(run_dir, method=method.name, degradation=degradation.name, generator=str(cfg.generator.source))
    done = writer.done_ids()
    if done:
        log.info("resuming in %s: %d of %d images already done", run_dir, len(done & set(dataset.ids)), len(dataset.ids))
    log.info("method %s, degradation %s, %d images, generator %s", method.name, degradation.name,
             len(dataset.ids), generator_name)

    logger = build.build_logger(cfg, run_dir=run_dir, method=method.name, degradation=degradation.name)
    trainer = pl.Trainer(**options, logger=logger, default_root_dir=str(run_dir))
    module = InversionModule(generator, method=method, degradation=degradation, seed=int(cfg.seed), lpips=lpips,
                             writer=writer, earlier=[r for r in writer.records() if r["image"] in done],
                             checkpoint_every=int(cfg.checkpoint_every), stop=stop, progress=build.show_progress(cfg),
                             execution=build.build_execution(cfg))
    datamodule = InversionDataModule(dataset, batch_size=int(cfg.batch_size), done=done)
    trainer.test(module, datamodule=datamodule, verbose=False)
    if stop.received:  # it came after the last step of the last batch: the records are complete
        raise RunInterrupted(stop.received)
    trainer.strategy.barrier()
    if not trainer.is_global_zero:
        return None
    summary = writer.finalize(config=OmegaConf.to_container(cfg, resolve=True), experiment=cfg.experiment_name,
                              data=_data_name(cfg), steps=method.step_counts())
    log_results(logger, writer.run_dir / "results.csv", summary)
    _print_summary(summary, run_dir)
    return summary


def _data_name(cfg: DictConfig) -> str:
    target = cfg.data.get("_target_", "")
    return str(cfg.data.path) if target.endswith("ImageFolder") else "bundled samples"


def _print_summary(summary: dict, run_dir: Path) -> None:
    parts = [f"{name} {values['mean']:.4g} ± {values['std']:.2g}"
             for name, values in summary["metrics"].items() if values["mean"] is not None]
    steps = ", ".join(f"{count} {field.replace('_', ' ')}" for field, count in summary["steps"].items())
    print(f"{summary['method']} / {summary['degradation']}: {summary['ok']} ok, {summary['failed']} failed; "
          f"{steps}; {'; '.join(parts)}\nresults: {run_dir / 'results.csv'}", flush=True)


@hydra.main(config_path=config_dir("run"), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except SphinxError as error:
        # once, on stderr: logging it too would print it a second time through Hydra's console handler
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    except RunInterrupted as stopped:
        run_dir = HydraConfig.get().runtime.output_dir
        saved = "; the batch in flight was saved" if stopped.saved is not None else ""
        print(f"stopped by {stopped.signal_name}{saved}; to resume, rerun the same command with "
              f"hydra.run.dir={run_dir}", file=sys.stderr, flush=True)
        sys.exit(exit_status(stopped.signal_name))


if __name__ == "__main__":
    main()
