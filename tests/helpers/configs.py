"""The one way the tests compose a Hydra config: as ``python -m sphinx.<entry point>`` would."""

from __future__ import annotations

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from sphinx.configs import config_dir

PRIMARY_CONFIGS = {"run": "config", "edit": "editing", "train": "config"}


def compose(entry_point: str, *overrides: str, hydra: bool = False) -> DictConfig:
    """The composed config of ``sphinx.<entry_point>`` under ``overrides`` (with its ``hydra`` node if asked)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir(entry_point), version_base="1.3"):
            return hydra_compose(
                config_name=PRIMARY_CONFIGS[entry_point], overrides=list(overrides), return_hydra_config=hydra
            )
    finally:
        GlobalHydra.instance().clear()
