"""method=ilo: rounds over intermediate layers, spherical and l1-ball projections, the best-MSE image."""

from __future__ import annotations

import pytest
import torch

from helpers import images_of
from sphinx.errors import ConfigError
from sphinx.generators import load_generator
from sphinx.inversion import invert, render_state
from sphinx.inversion.batch_checkpoint import BatchCheckpoint, RunInterrupted
from sphinx.inversion.methods import method_config
from sphinx.inversion.methods.ilo import IntermediateLayers, project_l1_ball, render_from
from sphinx.metrics.image_quality import psnr
from sphinx.utils.seeding import per_image_randn

IDS = ["a.png", "b.png"]
MSE_ONLY = dict(lpips_weight=0.0, geocross_weight=0.0, fit_samples=2000)


@pytest.fixture(scope="module")
def generator(tiny_generator):
    return tiny_generator


@pytest.fixture(scope="module")
def own_images(tiny_generator):  # images the generator made: targets ILO can reach
    return images_of(tiny_generator, len(IDS))


def bound(generator, rounds, **options) -> IntermediateLayers:
    config = method_config("ilo", rounds=rounds, **{**MSE_ONLY, **options})
    method = IntermediateLayers(generator, IDS, config, seed=0)
    method.stages()
    return method


def test_rendering_from_block_zero_is_the_generators_synthesis(generator):
    method = bound(generator, (1,))
    images = render_from(generator, 0, None, method.ws(), method.noise)
    torch.testing.assert_close(images, generator.synthesis(method.ws(), noise=method.noise), rtol=0, atol=0)


def test_round_k_optimizes_z_the_noise_of_layers_up_to_4_plus_2k_and_the_map_entering_block_k(generator):
    method = bound(generator, (2, 2, 2))
    for block, stage in enumerate(method.stages()):
        (group,) = stage.groups
        expected = [method.z, *method.noise[: 5 + 2 * block], *([method.features[block - 1]] if block else [])]
        assert [id(p) for p in group.params] == [id(p) for p in expected]
        assert stage.rampup == 0.05 and stage.rampdown == 0.75 and group.lr == 0.1 and group.scheduled


def test_a_round_leaves_the_layers_it_does_not_name_where_they_were(generator, own_images):
    result = invert(generator, own_images, IDS, method="ilo", rounds=(4,), **MSE_ONLY)
    initial = [per_image_randn((1, s, s), IDS, 0, "noise", i) for i, s in enumerate(generator.noise_resolutions)]
    for index, state in enumerate(result.states):
        for layer in range(generator.num_noise_layers):
            moved = not torch.equal(state.tensors[f"noise.{layer}"], initial[layer][index])
            assert moved == (layer <= 4), layer  # round 0: noise 0..4 only


def test_the_spherical_projection_keeps_z_rows_and_noise_maps_at_their_round_start_norms(generator):
    method = bound(generator, (3, 3))
    stage = method.stages()[1]
    method.render(method.stages()[0], 0, 0.0)
    method.render(stage, 3, 0.0)  # enters round 1: its start norms
    z_norms = method.z.norm(dim=-1).clone()
    noise_norms = [m.flatten(1).norm(dim=1).clone() for m in method.noise[:7]]
    with torch.no_grad():
        method.z.mul_(1.7).add_(0.3)
        for noise_map in method.noise:
            noise_map.mul_(0.4).add_(0.1)
    method.after_step(stage)
    torch.testing.assert_close(method.z.norm(dim=-1), z_norms)
    for noise_map, norm in zip(method.noise[:7], noise_norms):
        torch.testing.assert_close(noise_map.flatten(1).norm(dim=1), norm)


def test_the_l1_ball_projection_is_the_nearest_point_of_the_ball():
    deviation = torch.randn(3, 40, generator=torch.Generator().manual_seed(1)) * torch.tensor([[0.01], [1.0], [3.0]])
    projected = project_l1_ball(deviation, 5.0)
    assert torch.equal(projected[0], deviation[0])  # already inside: unchanged
    for row, original in zip(projected[1:], deviation[1:]):
        assert row.abs().sum() == pytest.approx(5.0, rel=1e-5)
        # the nearest point soft-thresholds every entry by one threshold
        threshold = (original.abs() - row.abs())[row != 0]
        assert threshold.max() - threshold.min() < 1e-5 and (row.sign() * original.sign() >= 0).all()


def test_the_ball_projections_keep_each_rounds_change_inside_its_radius(generator, own_images):
    options = dict(rounds=(3, 3), project_balls=True, latent_radii=(0.5,), noise_radii=(0.5,), feature_radii=(0.5,))
    method = bound(generator, **options)
    first, second = method.stages()
    method.render(first, 0, 0.0)
    method.render(second, 3, 0.0)
    start = method.z.detach().clone()
    with torch.no_grad():
        method.z.add_(torch.randn_like(method.z))
    method.after_step(second)
    # the l1 ball, then the sphere: the change stays small though the push was large
    assert ((method.z - start).flatten(1).abs().sum(dim=1) < 2.0).all()


def test_the_reported_image_is_the_lowest_mse_one_not_the_last(generator, own_images):
    result = invert(generator, own_images, IDS, method="ilo", rounds=(6, 6), lr=0.5, **MSE_ONLY)
    best = result.loss_history.min(dim=0).values  # the loss is the MSE alone here
    # the reported image before the final clamp to [-1, 1]: the one its MSE was measured on
    rendered = torch.cat([IntermediateLayers.render_state(generator, s.tensors, None) for s in result.states])
    reported = (rendered - own_images).square().mean(dim=(1, 2, 3))
    torch.testing.assert_close(reported, best, rtol=1e-4, atol=1e-6)
    assert (result.loss_history[-1] > best * 1.01).any()  # a last-image policy would report worse


def test_its_state_re_renders_the_reported_image_exactly(generator, own_images):
    result = invert(generator, own_images, IDS, method="ilo", rounds=(3, 3, 3), **MSE_ONLY)
    for index, state in enumerate(result.states):
        assert state.method == "ilo" and "start_block" in state.tensors
        torch.testing.assert_close(
            render_state(generator, state).clamp(-1, 1), result.reconstructions[index : index + 1]
        )


def test_a_batch_equals_its_images_one_by_one(generator, own_images):
    options = dict(method="ilo", rounds=(3, 3), **{**MSE_ONLY, "geocross_weight": 0.01})
    together = invert(generator, own_images, IDS, **options)
    for index in range(len(IDS)):
        alone = invert(generator, own_images[index : index + 1], IDS[index : index + 1], **options)
        assert torch.equal(alone.reconstructions[0], together.reconstructions[index])


@pytest.mark.parametrize("degradation", ["denoise", "inpaint", "superres", "compressed_sensing", "colorize"])
def test_it_runs_with_every_degradation(generator, own_images, degradation):
    result = invert(generator, own_images, IDS, method="ilo", rounds=(2, 2), degradation=degradation, **MSE_ONLY)
    assert result.status == ("ok", "ok") and torch.isfinite(result.reconstructions).all()


def test_a_stopped_batch_resumes_exactly(generator, own_images, tmp_path):
    options = dict(method="ilo", rounds=(3, 3, 3), **{**MSE_ONLY, "project_balls": True})
    whole = invert(generator, own_images, IDS, **options)
    calls = {"n": 0}

    def stop_in_round_one():
        calls["n"] += 1
        return "SIGTERM" if calls["n"] == 5 else None

    path = tmp_path / "inflight.pt"
    with pytest.raises(RunInterrupted):
        invert(
            generator, own_images, IDS, **options, checkpoint=BatchCheckpoint(path, stop_requested=stop_in_round_one)
        )
    resumed = invert(generator, own_images, IDS, **options, checkpoint=BatchCheckpoint(path))
    assert torch.equal(resumed.loss_history, whole.loss_history)
    assert torch.equal(resumed.reconstructions, whole.reconstructions)


def test_options_that_cannot_work_are_refused_before_compute(generator, own_images):
    with pytest.raises(ConfigError, match="has 5 rounds, but this 32 px generator has 4 blocks"):
        invert(generator, own_images, IDS, method="ilo", rounds=(1, 1, 1, 1, 1))
    with pytest.raises(ConfigError, match="rounds must be a list of numbers"):
        method_config("ilo", rounds="50")
    with pytest.raises(ConfigError, match="rounds must be one or more non-negative"):
        method_config("ilo", rounds=(5, -1))


@pytest.mark.slow
def test_it_inverts_an_image_the_demo_prior_made_to_30_db_within_the_sources_steps():
    demo = load_generator("demo")
    with torch.no_grad():
        target = demo(torch.randn(1, demo.style_dim, generator=torch.Generator().manual_seed(5))).clamp(-1, 1)
    result = invert(demo, target, ["made"], method="ilo", lpips_weight=0.0)  # rounds 50, 50, 25, 25
    assert result.loss_history.shape[0] == 150
    assert float(psnr(result.reconstructions, target)[0]) >= 30
