"""The one place that turns a composed Hydra config into objects: :func:`build_job`.

Everything is built and checked here, before any compute: the generator loads, the data path
exists, the method options are known to the method, the degradation fits the resolution, an
edit's factors, direction and saved states fit the generator. Lightning is not imported here, so
a bad option fails in seconds.
"""

from __future__ import annotations

import logging
import math
import netrc
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from sphinx import configs  # registers ${scaled_steps:...} before any config resolves
from sphinx.data.datasets import image_id_to_filename
from sphinx.editing import (
    as_layer_direction,
    build_transform,
    check_factor,
    check_factors,
    load_direction,
    principal_directions,
)
from sphinx.editing.attribute import AttributeConfig
from sphinx.editing.latents import layer_mask, state_inputs
from sphinx.editing.spec import KINDS, EditSpec
from sphinx.errors import ConfigError, MissingWeights, SphinxError
from sphinx.generators.loading import describe
from sphinx.generators.stylegan2 import Generator
from sphinx.inversion import InversionState, load_state
from sphinx.inversion.execution import Execution
from sphinx.inversion.methods import MethodConfig
from sphinx.rundir.fingerprint import run_fingerprint
from sphinx.utils.text import image_id_to_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """The pieces one ``sphinx.run`` or ``sphinx.edit`` job runs, built and checked from its config.

    ``lpips`` None means MSE only (``method`` is adjusted to it); ``edit`` is None for
    ``sphinx.run``; ``fingerprint`` is what the run dir remembers to refuse a changed rerun (see
    :mod:`sphinx.rundir.fingerprint`).
    """

    generator: Generator
    dataset: object
    degradation: object
    method: MethodConfig
    lpips: object
    execution: Execution
    edit: EditSpec | None
    fingerprint: dict


def build_job(cfg: DictConfig, *, edit: bool = False) -> Job:
    """Check every option of ``cfg`` and build the job's pieces, before any compute.

    Args:
        cfg: the composed config of ``sphinx.run`` (or of ``sphinx.edit`` with ``edit``).
        edit: build the ``edit`` group too.

    Raises:
        SphinxError: a bad option, file or combination, in one line.
    """
    check_run_options(cfg)
    generator = build_generator(cfg)
    dataset = build_dataset(cfg, resolution=generator.resolution)
    degradation = build_degradation(cfg, resolution=generator.resolution)
    method = build_method(cfg, batch_size=cfg.batch_size)
    method.check_generator(generator)
    spec = build_edit(cfg, generator, list(dataset.ids), method, degradation.name) if edit else None
    lpips = build_lpips(cfg)
    method = method if lpips is not None else method.without_lpips()
    execution = build_execution(cfg)
    settings = {key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("generator", "degradation", "data")}
    fingerprint = run_fingerprint(
        **settings,
        architecture=describe(generator),
        method=method,
        seed=cfg.seed,
        execution=execution,
        lpips=cfg.lpips.net if lpips is not None else None,
        edit=OmegaConf.to_container(cfg.edit, resolve=True) if edit else None,
    )
    return Job(generator, dataset, degradation, method, lpips, execution, spec, fingerprint)


def build_training(cfg: DictConfig, out_dir: str | Path):
    """``sphinx.train``'s job: the GAN module and its Trainer, from ``conf/train``'s composed config.

    Args:
        cfg: the composed config (``conf/train/config.yaml`` and its groups).
        out_dir: the run folder (checkpoints, samples, ``metrics.csv``).

    Returns:
        ``(module, trainer)``.
    """
    import pytorch_lightning as pl
    from pytorch_lightning.loggers import CSVLogger

    from sphinx.lit.gan import GANModule, GANSettings
    from sphinx.lit.loggers import start_csv_logger

    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"{missing[0]} is not set; e.g. data=folder needs data.path=/folder/of/images")
    seed = cfg.get("seed")
    if seed is not None:
        _check_integer(seed, "seed", minimum=0)
    apply_threads(cfg)
    _check_accelerator(cfg.trainer, instead="use trainer=cpu")
    settings = GANSettings(**OmegaConf.to_container(cfg.gan, resolve=True), seed=seed if seed is not None else 0)
    images = instantiate_leaf(cfg.data, "the training images")
    if seed is not None:
        # the networks' initial weights; every later draw is seeded per step inside the module
        pl.seed_everything(seed, workers=True)
    generator = instantiate_leaf(cfg.model.generator, "the generator")
    discriminator = instantiate_leaf(cfg.model.discriminator, "the discriminator")
    augment = instantiate_leaf(cfg.augment, "the augmentation") if cfg.get("augment") is not None else None
    module = GANModule(
        generator, discriminator, images, settings=settings, augment=augment, out_dir=out_dir, resume=cfg.get("resume")
    )
    logger = CSVLogger(save_dir=str(out_dir), name="", version="")
    start_csv_logger(logger)
    trainer = instantiate_leaf(cfg.trainer, "the trainer", logger=logger)
    return module, trainer


def instantiate_leaf(node: DictConfig, what: str, **kwargs):
    """``hydra.utils.instantiate``, with sphinx's own errors unwrapped to their one line."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as failed:
        cause = failed.__cause__
        if isinstance(cause, SphinxError):
            raise cause from None
        reason = " ".join(str(cause or failed).split())  # Lightning's messages span lines
        raise ConfigError(f"cannot build {what}: {reason}") from None


# Options that must be set, with what to set them to.
_MISSING_HINTS = {
    "data.path": "data=folder needs data.path=/folder/of/images",
    "generator.source": "generator=custom needs generator.source=<.pt/.pkl file, URL or preset>",
}
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
        raise ConfigError(
            f"trainer.precision={cfg.trainer.precision} would autocast the whole step, per-image heads "
            "and scores included; use execution.precision=bfloat16 (the generator and LPIPS in "
            "bfloat16, everything per image in float32)"
        )
    _check_accelerator(
        cfg.trainer,
        instead="use trainer=cpu, or trainer=cpu trainer.devices=2 trainer.strategy=ddp for several CPU processes",
    )
    _threads(cfg)


def apply_threads(cfg: DictConfig) -> None:
    """Give torch ``threads`` CPU threads, checked; null leaves PyTorch's default (one per core)."""
    if (threads := _threads(cfg)) is not None:
        torch.set_num_threads(threads)


def _threads(cfg: DictConfig) -> int | None:
    threads = cfg.get("threads")
    if threads is not None:
        _check_integer(threads, "threads", minimum=1)
    return threads


def _check_accelerator(trainer: DictConfig, *, instead: str) -> None:
    accelerator = str(trainer.get("accelerator", "auto")).lower()
    if accelerator in _GPU_ACCELERATORS and not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator={accelerator} needs a CUDA GPU and this machine has none; {instead}")


def build_execution(cfg: DictConfig) -> Execution:
    """How each inversion step runs, from ``execution``; checked."""
    return Execution(**OmegaConf.to_container(cfg.execution, resolve=True))


def _check_integer(value, key: str, *, minimum: int | None = None, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key} must be at least {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{key} must be at most {maximum}, got {value!r}")


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


def build_edit(
    cfg: DictConfig, generator: Generator, ids: list[str], method: MethodConfig, degradation: str
) -> EditSpec:
    """The edit of the ``edit`` group, every option checked, its states and direction loaded."""
    options = OmegaConf.to_container(cfg.edit, resolve=True)
    kind = options.pop("kind")
    if kind not in KINDS:
        raise ConfigError(f"edit.kind must be one of {', '.join(KINDS)}, got '{kind}'")
    _check_edit_options(options)
    if not method.implementation.latent_inputs:
        raise ConfigError(
            f"method={method.name} has no W+ input to edit; use sphinx, its variants, w, wplus or wplus_noise"
        )
    spec = {"kind": kind, "options": options}
    if kind == "attribute":
        if degradation != "none":
            raise ConfigError("attribute learning fits the clean images: use degradation=none")
        transform = build_transform(options["transform"])
        options["factors"] = list(check_factors(transform, options["factors"]))
        options["held_out"] = [check_factor(transform, factor, "held-out factor") for factor in options["held_out"]]
        for key in ("control", "fit_inversion"):
            if not isinstance(options[key], bool):
                raise ConfigError(f"edit.{key} must be true or false, got {options[key]!r}")
        if not isinstance(options["tolerance"], (int, float)) or not 0 < options["tolerance"] < math.inf:
            raise ConfigError(f"edit.tolerance must be a positive number, got {options['tolerance']!r}")
        AttributeConfig(
            latent=method,
            transform=transform,
            factors=options["factors"],
            mono_weight=options["mono_weight"],
            margin=options["margin"],
            attribute_lr=options["attribute_lr"],
        )
    elif kind == "morph" and len(ids) < 2:
        raise ConfigError(f"a morph needs at least two images and the data has {len(ids)}; raise data.limit")
    elif kind == "direction":
        layer_mask(generator, options["layers"])
        if not options["strengths"]:
            raise ConfigError("edit.strengths needs at least one value")
        if options["source"] == "pca":
            component = options["component"]
            pca = principal_directions(generator, samples=options["pca_samples"], components=component + 1)
            spec["direction"] = as_layer_direction(pca.directions[component] * pca.stds[component], generator)
            spec["direction_name"] = f"pca:{component}"
        else:
            spec["direction"] = load_direction(options["source"], generator)
            spec["direction_name"] = Path(options["source"]).name
    if options.get("states_from") is not None:
        states = _load_states(Path(options["states_from"]), ids, generator)
        if kind == "attribute" and any(s.method != method.name for s in states.values()):
            raise ConfigError(
                f"edit.states_from holds states of method {next(iter(states.values())).method}; "
                f"start method={method.name} from states of the same method"
            )
        spec["initial_states"] = states
    return EditSpec(**spec)


# The edit group's integers with their (least, most) values: the bounds keep a slip of the finger
# (edit.frames=1000000000) from running for days, and hold every value a real edit needs.
_EDIT_INTEGERS = {
    "frame_ms": (20, 60_000),
    "walk_density": (1, 100),
    "walk_extend": (0, 100),
    "frames": (2, 1000),
    "component": (0, None),
    "pca_samples": (2, 10_000_000),
}
_EDIT_NUMBER_LISTS = ("factors", "held_out", "strengths")
_EDIT_PATHS = ("source", "states_from")  # a folder named 123 reaches here as an int


def _check_edit_options(options: dict) -> None:
    """Refuse an edit option of the wrong kind or out of range in one line; paths become strings."""
    for key, value in options.items():
        if key in _EDIT_INTEGERS:
            _check_integer(value, f"edit.{key}", minimum=_EDIT_INTEGERS[key][0], maximum=_EDIT_INTEGERS[key][1])
        elif key in _EDIT_NUMBER_LISTS and not (isinstance(value, list) and all(_finite_number(v) for v in value)):
            raise ConfigError(f"edit.{key} must be a list of finite numbers, e.g. [0, 22.5, 45], got {value!r}")
        elif key in _EDIT_PATHS and value is not None:
            options[key] = str(value)


def _finite_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _load_states(folder: Path, ids: list[str], generator: Generator) -> dict[str, InversionState]:
    if not folder.is_dir():
        raise ConfigError(f"{folder}: edit.states_from must be a sphinx.run dir (with images/<id>/state.pt)")
    states = {}
    for image_id in ids:
        path = folder / "images" / image_id_to_filename(image_id) / "state.pt"
        if not path.is_file():
            raise ConfigError(
                f"{path}: no saved state for image {image_id_to_text(image_id)}; run sphinx.run on the same data first "
                "or limit the data (data.limit, data.names)"
            )
        states[image_id] = load_state(path)
        state_inputs(generator, states[image_id], source=path)  # another generator or a PTI state: one line
    return states


def build_lpips(cfg: DictConfig, *, device: torch.device | str = "cpu"):
    """The LPIPS network for the loss and the metric, or None without it.

    ``lpips.net=none`` goes without LPIPS. Without the ImageNet backbone (an offline machine that
    never cached it) the run goes on with MSE only and an empty LPIPS column, said in one line,
    unless ``lpips.required`` is set.
    """
    from sphinx.metrics.lpips import LPIPS

    if cfg.lpips.net == "none":
        if cfg.lpips.required:
            raise ConfigError("lpips.net=none goes without LPIPS, which lpips.required=true forbids; drop one of them")
        log.info("LPIPS off (lpips.net=none): the loss is MSE only and the lpips column stays empty")
        return None
    try:
        return LPIPS(cfg.lpips.net, backbone_path=cfg.lpips.backbone_path, progress=True).to(device)
    except MissingWeights as missing:
        if cfg.lpips.required:
            raise MissingWeights(
                missing.problem, f"{_LPIPS_ADVICE}, or lpips.required=false to go on without it"
            ) from None
        log.warning(
            "LPIPS off (MSE-only loss, empty lpips column): %s; %s, lpips.net=none to go without it unwarned",
            missing.problem,
            _LPIPS_ADVICE,
        )
        return None


_LPIPS_ADVICE = "to use it put the file there or set lpips.backbone_path=<file>"


def trainer_options(cfg: DictConfig) -> dict:
    """``pl.Trainer`` keywords from the ``trainer`` group, plus what inversion requires."""
    options = OmegaConf.to_container(cfg.trainer, resolve=True)
    # Inversion optimizes inside test/predict steps: they need autograd, not inference mode;
    # and images are sharded by sphinx's own sampler, which never repeats one.
    options.update(
        inference_mode=False,
        use_distributed_sampler=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        max_epochs=1,
    )
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
    from pytorch_lightning.loggers import CSVLogger, MLFlowLogger, WandbLogger

    from sphinx.lit.loggers import start_csv_logger

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
    if isinstance(logger, CSVLogger):
        start_csv_logger(logger)
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return logger


def _wandb_mode(mode: str | None) -> str:
    """W&B's own mode for sphinx's ``logger.mode``: auto is online when logged in, else offline."""
    if mode not in ("auto", "online", "offline"):
        raise ConfigError(f"logger.mode must be auto, online or offline, got {mode}")
    if mode == "auto":
        return "online" if logged_in_to_wandb() else "offline"
    if mode == "online" and not logged_in_to_wandb():
        raise ConfigError(
            "logger.mode=online needs a W&B login and there is none (no WANDB_API_KEY, no api.wandb.ai in "
            "~/.netrc): run `wandb login` first, or use logger.mode=offline and `wandb sync` the run later"
        )
    return mode
