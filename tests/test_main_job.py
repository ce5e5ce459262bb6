"""The main job shows SPHInX at its best: at its own budget it beats W+ on the bundled samples."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from sphinx.config_root import config_dir
from sphinx.build import build_method
from sphinx.data import BundledSamples, collate_items
from sphinx.generators import load_generator
from sphinx.inversion import invert
from sphinx.metrics.image_quality import psnr
from sphinx.run import without_lpips

CONF = Path(config_dir("run"))


def main_job_method():
    """The method and options ``python -m sphinx.run +experiment=ood_faces`` runs."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["+experiment=ood_faces"])
    GlobalHydra.instance().clear()
    return build_method(cfg, batch_size=cfg.batch_size)


@pytest.mark.slow
def test_the_main_jobs_sphinx_beats_wplus_at_the_same_steps_on_the_bundled_samples():
    spec = main_job_method()
    steps = spec.options["steps"]
    assert spec.name.startswith("sphinx") and steps == 500
    generator = load_generator("demo")
    dataset = BundledSamples(resolution=generator.resolution)
    batch = collate_items([dataset[i] for i in range(len(dataset))])
    targets, ids = batch["images"], batch["ids"]
    # Offline there are no VGG weights, so the run goes MSE only, as the main job does here.
    sphinx = invert(generator, targets, ids, method=spec.name, seed=0, record_curve=False,
                    **without_lpips(spec.options))
    wplus = invert(generator, targets, ids, method="wplus", seed=0, steps=steps, lpips_weight=0.0,
                   record_curve=False)
    sphinx_psnr, wplus_psnr = psnr(sphinx.reconstructions, targets), psnr(wplus.reconstructions, targets)
    assert sphinx.status == ("ok",) * len(ids)
    assert sphinx_psnr.mean() > wplus_psnr.mean() + 1.0, (sphinx_psnr, wplus_psnr)
