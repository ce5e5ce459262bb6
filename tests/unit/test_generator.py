"""The generator reproduces the PyTorch port of StyleGAN2 exactly, per sample, on any table."""

from __future__ import annotations

import json

import pytest
import torch

from sphinx.generators import Generator, default_channels, num_latents
from sphinx.generators.ops import fir_kernel, upfirdn2d

TOLERANCE = 1e-4  # fixture README: ~40x the float32 reformulation noise, 1000x below any bug


def build_from_fixture(fixtures_root, name):
    checkpoint = torch.load(fixtures_root / "rosinality" / f"{name}.pt", weights_only=True)
    cases = torch.load(fixtures_root / "rosinality" / f"{name}_cases.pt", weights_only=True)
    constructor = cases["meta"]["constructor"]
    generator = Generator(
        constructor["size"],
        constructor["style_dim"],
        constructor["n_mlp"],
        channels=cases["meta"]["channels"],
        lr_mlp=constructor["lr_mlp"],
    )
    generator.load_state_dict(checkpoint["g_ema"], strict=True)
    return generator.eval(), checkpoint, cases


def max_diff(a, b):
    return (a - b).abs().max().item()


@pytest.fixture(params=["tiny_g32", "tiny_g64"])
def port_fixture(request, fixtures_root):
    return build_from_fixture(fixtures_root, request.param)


@torch.no_grad()
def test_mapping_and_sampling_match_the_port(port_fixture):
    generator, _, cases = port_fixture
    assert max_diff(generator.mapping(cases["d"]["z"]), cases["d"]["w"]) <= TOLERANCE
    assert max_diff(generator(cases["a"]["z"]), cases["a"]["image"]) <= TOLERANCE


@torch.no_grad()
def test_per_layer_styles_and_per_sample_noise_match_the_port(port_fixture):
    generator, _, cases = port_fixture
    case = cases["b"]
    assert max_diff(generator.synthesis(case["w_plus"], noise=case["noise"]), case["image"]) <= TOLERANCE


@torch.no_grad()
def test_single_w_broadcast_matches_the_port(port_fixture):
    generator, _, cases = port_fixture
    ws = cases["b2"]["w"][:, None].expand(-1, generator.n_latent, -1)
    assert max_diff(generator.synthesis(ws), cases["b2"]["image"]) <= TOLERANCE


@torch.no_grad()
def test_truncation_with_seeded_mean_latent_matches_the_port(port_fixture):
    generator, checkpoint, cases = port_fixture
    case = cases["c"]
    mean = generator.mean_latent(case["mean_latent_n"], seed=case["mean_latent_seed"])
    assert max_diff(mean, case["truncation_latent"]) <= TOLERANCE
    image = generator(case["z"], truncation=case["truncation"], truncation_latent=mean)
    assert max_diff(image, case["image"]) <= TOLERANCE
    generator.latent_avg = checkpoint["latent_avg"]
    assert max_diff(generator(case["z"], truncation=case["truncation"]), case["image"]) <= TOLERANCE


@torch.no_grad()
def test_style_mixing_rows_match_the_port(port_fixture):
    generator, _, cases = port_fixture
    case = cases["e"]
    cut = case["inject_index"]
    first, second = generator.mapping(case["z1"]), generator.mapping(case["z2"])
    ws = torch.cat(
        [first[:, None].expand(-1, cut, -1), second[:, None].expand(-1, generator.n_latent - cut, -1)], dim=1
    )
    assert max_diff(generator.synthesis(ws), case["image"]) <= TOLERANCE


@torch.no_grad()
def test_every_intermediate_layer_matches_the_port(fixtures_root):
    generator, _, cases = build_from_fixture(fixtures_root, "tiny_g32")
    recorded = {}
    modules = dict(generator.named_modules())
    for name in [
        "conv1",
        "to_rgb1",
        *[f"convs.{i}" for i in range(len(generator.convs))],
        *[f"to_rgbs.{i}" for i in range(len(generator.to_rgbs))],
    ]:
        modules[name].register_forward_hook(lambda m, i, o, name=name: recorded.__setitem__(name, o))
    generator(cases["a"]["z"])
    expected = cases["a_intermediates"]["tensors"]
    compared = 0
    for key, tensor in expected.items():
        kind, _, layer = key.partition(":")
        if kind == "module_out" and layer in recorded:
            torch.testing.assert_close(recorded[layer], tensor, rtol=1e-5, atol=1e-4)
            compared += 1
    assert compared == 2 + len(generator.convs) + len(generator.to_rgbs)


@pytest.mark.parametrize(
    "manifest, resolution, multiplier", [("manifest_256.json", 256, 2), ("manifest_ffhq1024.json", 1024, 2)]
)
def test_state_dict_equals_the_published_key_and_shape_manifest(fixtures_root, manifest, resolution, multiplier):
    reference = json.loads((fixtures_root / "rosinality" / manifest).read_text())
    with torch.device("meta"):
        generator = Generator(resolution, 512, 8, channel_multiplier=multiplier)
    ours = [(key, list(tensor.shape)) for key, tensor in generator.state_dict().items()]
    assert ours == [(entry["key"], entry["shape"]) for entry in reference["keys"]]
    assert generator.n_latent == reference["n_latent"]
    assert generator.num_noise_layers == reference["num_layers_noise"]
    buffers = {name for name, _ in generator.named_buffers() if name != "latent_avg"}
    assert buffers == {entry["key"] for entry in reference["keys"] if entry["kind"] == "buffer"}
    kernels = [entry for entry in reference["keys"] if "value" in entry]
    assert all(torch.allclose(fir_kernel((1, 3, 3, 1), gain=4), torch.tensor(e["value"])) for e in kernels)


@pytest.mark.parametrize("resolution", [8, 32, 128, 256, 1024])
def test_latent_rows_follow_resolution_never_a_fixed_eighteen(resolution):
    assert num_latents(resolution) == 2 * resolution.bit_length() - 4
    with torch.device("meta"):
        generator = Generator(resolution, 64, 2, channels=default_channels(resolution))
    assert generator.n_latent == num_latents(resolution)


@pytest.fixture
def small_generator():
    torch.manual_seed(0)
    generator = Generator(16, 32, 2, channels={4: 16, 8: 12, 16: 8})
    for name, parameter in generator.named_parameters():
        if name.endswith("noise.weight"):  # zero at init, which would hide the noise path
            parameter.data.fill_(0.3)
    return generator.eval().requires_grad_(False)


@torch.no_grad()
def test_each_sample_is_independent_of_its_batch(small_generator):
    g = small_generator
    ws = torch.randn(3, g.n_latent, g.style_dim)
    noise = g.make_noise(3, generator=torch.Generator().manual_seed(1))
    inputs = torch.randn(3, g.channels[4], 4, 4)
    together = g.synthesis(ws, noise=noise, input=inputs)
    for i in range(3):
        alone = g.synthesis(ws[i : i + 1], noise=[n[i : i + 1] for n in noise], input=inputs[i : i + 1])
        assert max_diff(alone, together[i : i + 1]) <= 1e-5


@torch.no_grad()
def test_custom_input_replaces_the_learned_constant(small_generator):
    g = small_generator
    ws = torch.randn(2, g.n_latent, g.style_dim)
    constant = g.input.input.expand(2, -1, -1, -1)
    assert max_diff(g.synthesis(ws, input=constant), g.synthesis(ws)) == 0
    assert max_diff(g.synthesis(ws, input=torch.randn_like(constant)), g.synthesis(ws)) > 1e-2


def test_wrong_shapes_are_refused_with_the_expected_shape(small_generator):
    g = small_generator
    with pytest.raises(ValueError, match=rf"ws must be \[B, {g.n_latent}, {g.style_dim}\]"):
        g.synthesis(torch.randn(2, 18, g.style_dim))
    with pytest.raises(ValueError, match="noise map"):
        g.synthesis(torch.randn(2, g.n_latent, g.style_dim), noise=g.make_noise(3))
    with pytest.raises(ValueError, match="truncation_latent"):
        g(torch.randn(1, g.style_dim), truncation=0.7)


def test_gradients_reach_styles_noise_and_input_not_frozen_weights(small_generator):
    g = small_generator
    ws = torch.randn(2, g.n_latent, g.style_dim, requires_grad=True)
    noise = [n.requires_grad_() for n in g.make_noise(2)]
    inputs = torch.randn(2, g.channels[4], 4, 4, requires_grad=True)
    g.synthesis(ws, noise=noise, input=inputs).square().mean().backward()
    assert ws.grad.abs().sum() > 0 and inputs.grad.abs().sum() > 0
    assert all(n.grad is not None and n.grad.abs().sum() > 0 for n in noise)
    assert all(p.grad is None for p in g.parameters())


@torch.no_grad()
def test_bfloat16_autocast_runs_and_stays_close_to_float32(small_generator):
    g = small_generator
    ws = torch.randn(2, g.n_latent, g.style_dim)
    reference = g.synthesis(ws)
    conv_dtypes = []
    g.convs[0].conv.register_forward_hook(lambda m, i, o: conv_dtypes.append(o.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = g.synthesis(ws)
    assert conv_dtypes == [torch.bfloat16]  # the convolutions really ran in low precision
    assert max_diff(low.float(), reference) < 0.1 * reference.abs().max().item()


def test_fir_upsampling_keeps_a_constant_image_constant():
    image = torch.full((1, 2, 6, 6), 0.3)
    up = upfirdn2d(image, fir_kernel((1, 3, 3, 1), gain=4), up=2, pad=(2, 1))
    assert up.shape == (1, 2, 12, 12)
    assert torch.allclose(up[:, :, 2:-2, 2:-2], torch.full_like(up[:, :, 2:-2, 2:-2], 0.3), atol=1e-6)
