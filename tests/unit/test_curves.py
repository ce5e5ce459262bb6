"""Quality-versus-budget curves: recorded during inversion, cheap, and true to the result."""

from __future__ import annotations

import math

import pytest
import torch

from helpers import images_of
from sphinx.inversion import invert
from sphinx.inversion.curves import log_spaced_steps
from sphinx.metrics.image_quality import psnr, ssim

IDS = ["cat.png", "dog.png"]


@pytest.fixture(scope="module")
def generator(tiny_generator):
    return tiny_generator


@pytest.fixture(scope="module")
def own_images(generator):
    return images_of(generator, 2)


MSE_ONLY = dict(lpips_weight=0.0, mse_weight=1.0)


def test_log_spaced_steps_cover_the_run_from_zero_to_its_end_a_few_per_decade():
    steps = log_spaced_steps(500)
    assert steps[0] == 0 and steps[-1] == 500
    assert list(steps) == sorted(set(steps))
    assert steps[:5] == (0, 1, 2, 3, 6) and 100 in steps
    assert len(log_spaced_steps(5000)) - len(steps) == 4  # one more decade, four more points
    assert log_spaced_steps(1) == (0, 1) and log_spaced_steps(0) == (0,)


@pytest.mark.parametrize(
    "method, options",
    [
        pytest.param("wplus", dict(steps=40), marks=pytest.mark.slow),
        ("sphinx", dict(steps=40)),
        pytest.param("wplus_noise", dict(steps=40, noise_steps=10), marks=pytest.mark.slow),
        pytest.param("w", dict(steps=40), marks=pytest.mark.slow),
        ("pti", dict(pivot_steps=20, steps=20, pivot_lpips_weight=0.0, pivot_mse_weight=1.0)),
    ],
)
def test_the_curve_ends_at_the_reported_result_and_starts_at_step_zero(generator, own_images, method, options):
    images = own_images[:1] if method == "pti" else own_images
    result = invert(generator, images, IDS[: len(images)], method=method, **MSE_ONLY, **options)
    curve = result.curve
    total = result.loss_history.shape[0]
    assert curve.steps[0] == 0 and curve.steps[-1] == total
    assert curve.metrics["psnr"].shape == (len(curve.steps), len(images))
    assert "lpips" not in curve.metrics  # no perceptual network in this run
    torch.testing.assert_close(curve.metrics["psnr"][-1], psnr(result.reconstructions, images))
    torch.testing.assert_close(curve.metrics["ssim"][-1], ssim(result.reconstructions, images))
    assert list(curve.seconds) == sorted(curve.seconds)
    assert (curve.metrics["psnr"][-1] > curve.metrics["psnr"][0]).all()  # the fit improved


def test_wplus_scores_the_steps_own_image_which_is_what_it_would_report(generator, own_images):
    """At a recorded step, W+'s curve equals a run stopped there: the step image is the result."""
    full = invert(generator, own_images, IDS, method="wplus", steps=40, **MSE_ONLY)
    stopped = invert(generator, own_images, IDS, method="wplus", steps=18, **MSE_ONLY)
    point = full.curve.steps.index(18)
    torch.testing.assert_close(full.curve.metrics["psnr"][point], psnr(stopped.reconstructions, own_images))


def test_sphinx_scores_its_fixed_final_draw_not_the_steps_random_one(generator, own_images):
    full = invert(generator, own_images, IDS, method="sphinx", steps=30, **MSE_ONLY)
    untrained = invert(generator, own_images, IDS, method="sphinx", steps=0, **MSE_ONLY)
    # Step 0 is the untrained heads rendered at the final draw: what a 0-step run reports.
    torch.testing.assert_close(full.curve.metrics["psnr"][0], psnr(untrained.reconstructions, own_images))


def test_recording_the_curve_does_not_change_the_result(generator, own_images):
    for method in ("sphinx", "wplus"):
        recorded = invert(generator, own_images, IDS, method=method, steps=25, **MSE_ONLY)
        plain = invert(generator, own_images, IDS, method=method, steps=25, record_curve=False, **MSE_ONLY)
        assert plain.curve is None
        assert torch.equal(recorded.reconstructions, plain.reconstructions)
        assert torch.equal(recorded.loss_history, plain.loss_history)


def test_a_failed_image_has_no_curve_after_it_failed_and_the_other_keeps_its_own(generator, own_images):
    poisoned = own_images.clone()
    poisoned[1, 0, 0, 0] = math.nan
    result = invert(generator, poisoned, IDS, method="wplus", steps=20, **MSE_ONLY)
    assert torch.isnan(result.curve.metrics["psnr"][:, 1]).all()
    alone = invert(generator, own_images[:1], IDS[:1], method="wplus", steps=20, **MSE_ONLY)
    assert torch.equal(result.curve.metrics["psnr"][:, 0], alone.curve.metrics["psnr"][:, 0])


def test_a_curve_serializes_per_image_for_the_run_records(generator, own_images):
    result = invert(generator, own_images, IDS, method="wplus", steps=10, **MSE_ONLY)
    curve = result.curve.for_image(1)
    assert set(curve) == {"step", "seconds", "psnr", "ssim"}
    assert curve["step"] == list(result.curve.steps)
    assert curve["psnr"][-1] == pytest.approx(float(psnr(result.reconstructions, own_images)[1]), abs=1e-5)
