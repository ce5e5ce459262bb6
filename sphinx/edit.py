"""``python -m sphinx.edit``: learn attributes, morph, or move inversions along latent directions.

Thin, like ``sphinx.run``: compose (Hydra: sphinx.run's groups plus ``edit``), check and build
everything before any compute, run (Lightning), write the run's tables.
``python -m sphinx.edit --help`` lists the config groups.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sphinx.configs import config_dir  # and its resolvers, for --cfg job --resolve
from sphinx.errors import ConfigError, SphinxError
from sphinx.inversion.methods import MethodConfig

log = logging.getLogger("sphinx.edit")
KINDS = ("attribute", "morph", "direction")


def build_edit(cfg: DictConfig, generator, ids: list[str], method: MethodConfig, degradation: str):
    """The edit spec from the ``edit`` group, every option checked, states and direction loaded."""
    from sphinx.editing import as_layer_direction, build_transform, check_factors, load_direction, principal_directions
    from sphinx.editing.attribute import AttributeConfig
    from sphinx.editing.latents import layer_mask, state_inputs
    from sphinx.lit.editing import EditSpec

    options = OmegaConf.to_container(cfg.edit, resolve=True)
    kind = options.pop("kind")
    if kind not in KINDS:
        raise ConfigError(f"edit.kind must be one of {', '.join(KINDS)}, got '{kind}'")
    if not method.implementation.latent_inputs:
        raise ConfigError(f"method={method.name} has no W+ input to edit; use sphinx, its variants, w, wplus or "
                          "wplus_noise")
    if options["frame_ms"] < 20:
        raise ConfigError(f"edit.frame_ms must be at least 20, got {options['frame_ms']}")
    spec = {"kind": kind, "options": options}
    if kind == "attribute":
        if degradation != "none":
            raise ConfigError("attribute learning fits the clean images: use degradation=none")
        transform = build_transform(options["transform"])
        options["factors"] = list(check_factors(transform, options["factors"]))
        for factor in options["held_out"]:  # a factor the transform refuses fails now, not after training
            transform(torch.zeros(1, 3, 4, 4), float(factor))
        AttributeConfig(latent=method, transform=transform, factors=options["factors"],
                        mono_weight=options["mono_weight"], margin=options["margin"],
                        attribute_lr=options["attribute_lr"])
        if options["walk_density"] < 1 or options["walk_extend"] < 0:
            raise ConfigError("edit.walk_density must be >= 1 and edit.walk_extend >= 0")
    elif kind == "morph" and options["frames"] < 2:
        raise ConfigError(f"edit.frames must be at least 2, got {options['frames']}")
    elif kind == "direction":
        layer_mask(generator, options["layers"])
        if not options["strengths"]:
            raise ConfigError("edit.strengths needs at least one value")
        if options["source"] == "pca":
            pca = principal_directions(generator, samples=options["pca_samples"],
                                       components=options["component"] + 1)
            component = options["component"]
            spec["direction"] = as_layer_direction(pca.directions[component] * pca.stds[component], generator)
            spec["direction_name"] = f"pca:{component}"
        else:
            spec["direction"] = load_direction(options["source"], generator)
            spec["direction_name"] = Path(options["source"]).name
    if options.get("states_from") is not None:
        states = _load_states(Path(options["states_from"]), ids, generator, state_inputs)
        if kind == "attribute" and any(s.method != method.name for s in states.values()):
            raise ConfigError(f"edit.states_from holds states of method {next(iter(states.values())).method}; "
                              f"start method={method.name} from states of the same method")
        spec["initial_states"] = states
    return EditSpec(**spec)


def _load_states(folder: Path, ids: list[str], generator, state_inputs) -> dict:
    from sphinx.data.datasets import image_id_to_filename
    from sphinx.inversion import load_state

    if not folder.is_dir():
        raise ConfigError(f"{folder}: edit.states_from must be a sphinx.run dir (with images/<id>/state.pt)")
    states = {}
    for image_id in ids:
        path = folder / "images" / image_id_to_filename(image_id) / "state.pt"
        if not path.is_file():
            raise ConfigError(f"{path}: no saved state for image {image_id}; run sphinx.run on the same data first "
                              "or limit the data (data.limit, data.names)")
        states[image_id] = load_state(path)
        state_inputs(generator, states[image_id], source=path)  # another generator or a PTI state: one line
    return states


def run(cfg: DictConfig) -> dict | None:
    """Build and check everything from ``cfg``, edit the pending images, write the tables."""
    import pytorch_lightning as pl

    from sphinx import build
    from sphinx.lit.datamodule import InversionDataModule
    from sphinx.lit.editing import EditModule, EditWriter, morph_pairs
    from sphinx.lit.loggers import log_results
    from sphinx.run import _data_name

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if cfg.batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {cfg.batch_size}")
    if cfg.seed is None:
        raise ConfigError("seed must be an integer; results are seeded per image from it")
    generator = build.build_generator(cfg)
    dataset = build.build_dataset(cfg, resolution=generator.resolution)
    degradation = build.build_degradation(cfg, resolution=generator.resolution)
    method = build.build_method(cfg, batch_size=cfg.batch_size)
    edit = build_edit(cfg, generator, list(dataset.ids), method, degradation.name)
    lpips = build.build_lpips(cfg)
    if lpips is None:
        method = method.without_lpips()
    writer = EditWriter(run_dir, method=method.name, degradation=degradation.name,
                        generator=str(cfg.generator.source))
    done = writer.done_ids()
    if done:
        log.info("resuming in %s: %d of %d images already done", run_dir, len(done & set(dataset.ids)), len(dataset.ids))
    log.info("edit %s, method %s, %d images, generator %s", edit.kind, method.name, len(dataset.ids),
             build.describe_generator(generator, cfg))

    logger = build.build_logger(cfg, run_dir=run_dir, method=method.name, degradation=f"edit-{edit.kind}")
    trainer = pl.Trainer(**build.trainer_options(cfg), logger=logger, default_root_dir=str(run_dir))
    module = EditModule(generator, method=method, degradation=degradation, seed=int(cfg.seed), lpips=lpips,
                        writer=writer, edit=edit, progress=build.show_progress(cfg))
    trainer.test(module, datamodule=InversionDataModule(dataset, batch_size=int(cfg.batch_size), done=done),
                 verbose=False)
    trainer.strategy.barrier()
    if not trainer.is_global_zero:
        return None
    rows = None
    if edit.kind == "morph":
        rows = morph_pairs(generator, writer, frames=edit.options["frames"], frame_ms=edit.options["frame_ms"],
                           ordered_ids=list(dataset.ids))
    summary = writer.finalize(config=OmegaConf.to_container(cfg, resolve=True), experiment=cfg.experiment_name,
                              data=_data_name(cfg), rows=rows)
    log_results(logger, writer.run_dir / "results.csv", summary)
    parts = [f"{name} {v['mean']:.4g}" for name, v in summary["metrics"].items() if v["mean"] is not None]
    print(f"edit {edit.kind} / {method.name}: {summary['ok']} ok, {summary['failed']} failed; {'; '.join(parts)}\n"
          f"results: {run_dir / 'results.csv'}", flush=True)
    return summary


@hydra.main(config_path=config_dir("edit"), config_name="editing", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except SphinxError as error:
        log.error("%s", error)
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
