"""The one place that turns a composed Hydra config into objects.

Everything is built and checked here, before any compute: the generator loads, the data path
exists, the method options are known to the method, the degradation fits the resolution.
"""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from sphinx import configs  # noqa: F401  (registers ${scaled_steps:...} before any config resolves)
from sphinx.errors import ConfigError, DownloadError, SphinxError
from sphinx.generators.loading import describe
from sphinx.generators.stylegan2 import Generator
from sphinx.inversion.execution import Execution
from sphinx.inversion.methods import MethodConfig

log = logging.getLogger(__name__)

def instantiate_leaf(node: DictConfig, what: str, **kwargs):
    """``hydra.utils.instantiate``, with sphinx's own errors unwrapped to their one line."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as failed:
        cause = failed.__cause__
        if isinstance(cause, SphinxError):
            raise cause from None
        raise ConfigError(f"cannot build {what}: {cause or failed}") from None


# Options that must be set, with what to set them to.
_MISSING_HINTS = {"data.path": "data=folder needs data.path=/folder/of/images",
                  "generator.source": "generator=custom needs generator.source=<.pt/.pkl file, URL or preset>"}
_GPU_ACCELERATORS = ("gpu", "cuda")
_FULL_PRECISION = ("32-true", "32")


def check_run_options(cfg: DictConfig) -> None:
    """Refuse unset, mistyped or out-of-range run options in one line, before anything is built."""
    # first: the method's step counts are interpolations of it
    configs.check_steps_scale(cfg.steps_scale)
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        hint = _MISSING_HINTS.get(missing[0], f"set it with {missing[0]}=<value>")
        raise ConfigError(f"{missing[0]} is not set: {hint}")
    _check_integer(cfg.seed, "seed")
    _check_integer(cfg.batch_size, "batch_size", minimum=1)
    _check_integer(cfg.checkpoint_every, "checkpoint_every", minimum=0)
    build_execution(cfg)
    if str(cfg.trainer.get("precision", "32-true")) not in _FULL_PRECISION:
        raise ConfigError(f"trainer.precision={cfg.trainer.precision} would autocast the whole step, per-image heads "
                          "and scores included; use execution.precision=bfloat16 (the generator and LPIPS in "
                          "bfloat16, everything per image in float32)")
    accelerator = str(cfg.trainer.get("accelerator", "auto")).lower()
    if accelerator in _GPU_ACCELERATORS and not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator={accelerator} needs a CUDA GPU and this machine has none; use "
                          "trainer=cpu, or trainer=cpu trainer.devices=2 trainer.strategy=ddp for several CPU "
                          "processes")


def build_execution(cfg: DictConfig) -> Execution:
    """How each inversion step runs, from ``execution``; checked."""
    return Execution(**OmegaConf.to_container(cfg.execution, resolve=True))


def _check_integer(value, key: str, *, minimum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key} must be at least {minimum}, got {value!r}")


def build_generator(cfg: DictConfig) -> Generator:
    """Load the generator named by the ``generator`` group."""
    return instantiate_leaf(cfg.generator, "the generator")


def build_method(cfg: DictConfig, *, batch_size: int) -> MethodConfig:
    """The method config of the ``method`` group (its ``_target_`` class), checked.

    ``steps_scale`` reaches the step counts through their ``${scaled_steps:...}`` defaults
    (:mod:`sphinx.configs`); a count given explicitly is used as given.
    """
    target = cfg.method.get("_target_")
    try:
        config_class = get_class(target)
    except Exception as unknown:  # ImportError or ValueError, by Hydra version
        raise ConfigError(f"method._target_ {target} is not a class: {unknown}") from None
    if not issubclass(config_class, MethodConfig):
        raise ConfigError(f"method._target_ {target} is not a method config (sphinx.inversion.methods)")
    config_class.refuse_unknown(cfg.method.name, [key for key in cfg.method if key != "_target_"])
    config = instantiate_leaf(cfg.method, "the method")
    config.check_batch_size(batch_size)
    return config


def build_degradation(cfg: DictConfig, *, resolution: int):
    degradation = instantiate_leaf(cfg.degradation, "the degradation")
    degradation.validate((3, resolution, resolution))
    return degradation


def build_dataset(cfg: DictConfig, *, resolution: int):
    """The image dataset of the ``data`` group at the generator's resolution."""
    return instantiate_leaf(cfg.data, "the data", resolution=resolution)


def build_lpips(cfg: DictConfig, *, device: torch.device | str = "cpu"):
    """The LPIPS network for the loss and the metric, or None when its weights cannot be had.

    Without the ImageNet backbone (an offline machine that never cached it) the run goes on
    with MSE only and an empty LPIPS column, unless ``lpips.required`` is set.
    """
    from sphinx.metrics.lpips import LPIPS

    try:
        return LPIPS(cfg.lpips.net, backbone_path=cfg.lpips.backbone_path, progress=True).to(device)
    except DownloadError as missing:
        if cfg.lpips.required:
            raise
        log.warning("LPIPS off (MSE-only loss, empty LPIPS column): %s", " ".join(str(missing).split()))
        return None


def show_progress(cfg: DictConfig) -> bool:
    """Whether sphinx draws its progress (``trainer.enable_progress_bar``, default true)."""
    return bool(cfg.trainer.get("enable_progress_bar", True))


def trainer_options(cfg: DictConfig) -> dict:
    """``pl.Trainer`` keywords from the ``trainer`` group, plus what inversion requires."""
    options = OmegaConf.to_container(cfg.trainer, resolve=True)
    # Inversion optimizes inside test/predict steps: they need autograd, not inference mode;
    # and images are sharded by sphinx's own sampler, which never repeats one.
    options.update(inference_mode=False, use_distributed_sampler=False, enable_progress_bar=False,
                   enable_checkpointing=False, enable_model_summary=False, max_epochs=1)
    return options


def logged_in_to_wandb() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def build_logger(cfg: DictConfig, *, run_dir: Path, method: str, degradation: str):
    """The Lightning logger of the ``logger`` group, from its ``_target_`` (False for ``logger=none``).

    The run dir, the run's name and its labels fill the keys that the config leaves null; the
    whole resolved config is logged as the run's hyperparameters.
    """
    if "_target_" not in cfg.logger:
        return False
    from pytorch_lightning.loggers import MLFlowLogger, WandbLogger

    try:
        kind = get_class(cfg.logger._target_)
    except Exception as unknown:  # ImportError or ValueError, by Hydra version
        raise ConfigError(f"logger._target_ {cfg.logger._target_} is not a class: {unknown}") from None
    name, labels = f"{method}-{degradation}-{run_dir.name}", {"method": method, "degradation": degradation}
    run = {"save_dir": str(run_dir)}
    if issubclass(kind, WandbLogger):
        run.update(name=name, tags=list(labels.values()))
    elif issubclass(kind, MLFlowLogger):
        run.update(run_name=name, tags=labels)
        if cfg.logger.get("tracking_uri") is None:
            # MLflow 3 refuses its old file store; a SQLite store works with every version
            store = run_dir.resolve()
            run.update(tracking_uri=f"sqlite:///{store / 'mlflow.db'}", artifact_location=str(store / "mlartifacts"))
    run = {key: value for key, value in run.items() if cfg.logger.get(key) is None}
    if issubclass(kind, WandbLogger):
        run["mode"] = _wandb_mode(cfg.logger.get("mode"))
    logger = instantiate_leaf(cfg.logger, "the logger", _convert_="all", **run)  # plain lists and dicts
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return logger


def _wandb_mode(mode: str | None) -> str:
    """W&B's own mode for sphinx's ``logger.mode``: auto is online when logged in, else offline."""
    if mode not in ("auto", "online", "offline"):
        raise ConfigError(f"logger.mode must be auto, online or offline, got {mode}")
    if mode == "auto":
        return "online" if logged_in_to_wandb() else "offline"
    return mode


def describe_generator(generator: Generator, cfg: DictConfig) -> str:
    return f"{cfg.generator.source} ({describe(generator)})"
