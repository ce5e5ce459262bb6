"""Per-image writing as a Lightning callback: each batch's files land as soon as it ends."""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.loggers import WandbLogger

from sphinx.lit.loggers import log_pictures
from sphinx.rundir.writer import OutputWriter
from sphinx.utils.text import image_id_to_text


class WriteImages(pl.Callback):
    """Writes the outcome a test step returns: each image's pictures, state and record.json (last),
    then drops the batch's in-flight checkpoint; an edit's strips and walks go to the logger.

    Args:
        writer: the run dir's writer (:class:`OutputWriter` or :class:`sphinx.rundir.writer.EditWriter`).
    """

    def __init__(self, writer: OutputWriter) -> None:
        self.writer = writer

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs,
        batch,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self.writer.write_batch(outputs["outcome"])
        media, self.writer.media = self.writer.media, []
        if media:
            captions = [image_id_to_text(image_id) for image_id, _, _ in media]
            log_pictures(trainer.logger, "strips", [m[1] for m in media], captions, step=pl_module.logged_steps)
            if isinstance(trainer.logger, WandbLogger):
                import wandb

                trainer.logger.experiment.log(
                    {
                        "walks": [
                            wandb.Video(str(gif), format="gif", caption=caption)
                            for caption, (_, _, gif) in zip(captions, media)
                        ]
                    }
                )
