"""``python -m sphinx.train``: train a StyleGAN2 prior (configs in ``conf/train/``).

Examples::

    python -m sphinx.data.emoji --out data/emoji64
    python -m sphinx.train +experiment=train_demo_prior
    python -m sphinx.train data=folder data.path=/my/images model=demo64 gan.steps=20000
    python -m sphinx.train +experiment=train_demo_prior resume=outputs/train/<run>/checkpoints/last.pt
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import CSVLogger

from sphinx.build import instantiate_leaf
from sphinx.configs import config_dir
from sphinx.errors import ConfigError, SphinxError
from sphinx.lit.gan import GANModule

log = logging.getLogger(__name__)


def build(cfg: DictConfig, out_dir: str | Path) -> tuple[GANModule, pl.Trainer]:
    """Turn a composed training config into the module and its Trainer.

    Args:
        cfg: the composed config (``conf/train/config.yaml`` and its groups).
        out_dir: the run folder (checkpoints, samples, ``metrics.csv``).
    """
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"{missing[0]} is not set; e.g. data=folder needs data.path=/folder/of/images")
    if cfg.get("seed") is not None:
        # the networks' initial weights; every later draw is seeded per step inside the module
        pl.seed_everything(int(cfg.seed), workers=True)
    if cfg.get("threads") is not None:
        torch.set_num_threads(int(cfg.threads))
    generator = instantiate(cfg.model.generator)
    discriminator = instantiate(cfg.model.discriminator)
    augment = instantiate(cfg.augment) if cfg.get("augment") is not None else None
    images = instantiate_leaf(cfg.data, "the training images")
    module = GANModule(generator, discriminator, images, augment=augment, out_dir=out_dir,
                       seed=int(cfg.seed) if cfg.get("seed") is not None else 0,
                       resume=cfg.get("resume"), **OmegaConf.to_container(cfg.gan, resolve=True))
    trainer = instantiate(cfg.trainer, logger=CSVLogger(save_dir=str(out_dir), name="", version=""))
    return module, trainer


@hydra.main(config_path=config_dir("train"), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        module, trainer = build(cfg, out_dir)
    except SphinxError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    trainer.fit(module)
    log.info("step %d, %d images seen, %.0f s; checkpoint %s", module.step, module.step * module.batch_size,
             module.wall_seconds, out_dir / "checkpoints" / "last.pt")


if __name__ == "__main__":
    main()
