"""Pictures and tables for whichever Lightning logger a run has (CSV, W&B, TensorBoard, MLflow).

Lightning gives every logger the same ``log_metrics`` and ``log_hyperparams``; pictures and tables
each logger keeps in its own way, and the CSV logger keeps none (the run dir has them).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pytorch_lightning.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from sphinx.rundir.columns import read_results


def start_csv_logger(logger: CSVLogger) -> None:
    """Open ``logger``'s files without deleting those of an earlier run in the same folder.

    Lightning's CSV logger deletes a ``metrics.csv`` it finds (a resumed run's folder holds its
    earlier runs' one) and warns that it will, on every run into a folder that holds anything. The
    earlier file is kept instead, as ``metrics.1.csv`` (``.2``, ... for later ones), so the warning
    no longer holds and is left out.
    """
    if rank_zero_only.rank != 0:
        return  # the other DDP ranks write no files
    folder = Path(logger.log_dir)
    if (earlier := folder / "metrics.csv").is_file():
        number = 1
        while (folder / f"metrics.{number}.csv").exists():
            number += 1
        earlier.rename(folder / f"metrics.{number}.csv")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
        logger.experiment  # noqa: B018 (its writer is created here)


def keeps_pictures(logger: Logger | None) -> bool:
    """Whether :func:`log_pictures` has anywhere to put pictures (so that they are worth drawing)."""
    return isinstance(logger, (WandbLogger, TensorBoardLogger, MLFlowLogger))


def log_pictures(
    logger: Logger | None, key: str, pictures: Sequence[np.ndarray], captions: Sequence[str], *, step: int
) -> None:
    """Log labelled pictures, each ``[H, W, 3]`` uint8, with a caption each.

    W&B shows the captions under the pictures; TensorBoard files each picture under
    ``key/caption``; MLflow keeps them as ``key/step-NNNNNN-I.png`` artifacts. Other loggers get none.
    """
    if isinstance(logger, WandbLogger):
        logger.log_image(key=key, images=list(pictures), caption=list(captions), step=step)
    elif isinstance(logger, TensorBoardLogger):
        for picture, caption in zip(pictures, captions):
            logger.experiment.add_image(f"{key}/{caption}", picture, step, dataformats="HWC")
    elif isinstance(logger, MLFlowLogger):
        for index, picture in enumerate(pictures):
            logger.experiment.log_image(logger.run_id, picture, artifact_file=f"{key}/step-{step:06d}-{index}.png")


def log_results(logger: Logger | None, results: str | Path, summary: dict) -> None:
    """The run's summary as ``summary/*`` metrics and its results table, then close the logger.

    Args:
        logger: the run's logger (False or None: nothing to do).
        results: the run's ``results.csv``.
        summary: what ``OutputWriter.finalize`` returned (``metrics``, ``ok``, ``failed``).
    """
    if not logger:
        return
    metrics = {
        f"summary/{name}": values["mean"] for name, values in summary["metrics"].items() if values["mean"] is not None
    }
    logger.log_metrics({**metrics, "summary/ok": summary["ok"], "summary/failed": summary["failed"]})
    if isinstance(logger, WandbLogger):
        logger.log_table(key="results", dataframe=read_results(results))
    elif isinstance(logger, MLFlowLogger):
        logger.experiment.log_artifact(logger.run_id, str(results))
    logger.finalize("success")
