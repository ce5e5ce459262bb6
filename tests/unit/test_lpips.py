"""sphinx.metrics.lpips: LPIPS v0.1 ("net-lin") without torchvision.

Most tests use a random trunk (``pretrained=False``) with the real bundled linear weights; the
ImageNet trunks are 0.5 GB downloads, and the loading tests use random tensors in the
torchvision file format instead.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
from pathlib import Path

import pytest
import torch

import sphinx.metrics.lpips as lpips_module
from sphinx.errors import CheckpointError, ConfigError, DownloadError
from sphinx.metrics.lpips import LPIPS

VGG_FILE = "vgg16-397923af.pth"
# Facts of the reference implementation (lpips 0.1.4 lpips.py / pretrained_networks.py and
# torchmetrics' copy of it): the ReLU outputs compared, as indices into torchvision's
# `features`, and their channels.
TAPS = {"vgg": (3, 8, 15, 22, 29), "alex": (1, 4, 7, 9, 11)}  # relu1_2..relu5_3 / relu1..relu5
CHANNELS = {"vgg": (64, 128, 256, 512, 512), "alex": (64, 192, 384, 256, 256)}
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
# torchvision's vgg16 `features`: index of each 3x3 convolution -> (in, out) channels
VGG16_CONVOLUTIONS = {
    0: (3, 64), 2: (64, 64),
    5: (64, 128), 7: (128, 128),
    10: (128, 256), 12: (256, 256), 14: (256, 256),
    17: (256, 512), 19: (512, 512), 21: (512, 512),
    24: (512, 512), 26: (512, 512), 28: (512, 512),
}  # fmt: skip


@functools.cache
def random_lpips(net: str) -> LPIPS:
    return LPIPS(net, pretrained=False)


def images(seed: int, batch: int = 3, size: int = 32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=generator) * 2 - 1  # [B, 3, H, W] in [-1, 1]


def torchmetrics_lin_file(net: str) -> Path:
    spec = importlib.util.find_spec("torchmetrics")
    assert spec is not None and spec.submodule_search_locations
    root = Path(spec.submodule_search_locations[0])
    return root / "functional" / "image" / "lpips_models" / f"{net}.pth"


@pytest.fixture(autouse=True)
def _no_user_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never read the user's cache or environment, never touch the network."""
    monkeypatch.delenv("SPHINX_LPIPS_BACKBONE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("SPHINX_OFFLINE", "1")


@pytest.fixture(scope="module")
def vgg_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A VGG16 file in torchvision's format: random ``features.*`` tensors, a classifier entry."""
    generator = torch.Generator().manual_seed(1234)  # unlike the pretrained=False init (seed 0)
    state = {}
    for index, (c_in, c_out) in VGG16_CONVOLUTIONS.items():
        weight = torch.randn(c_out, c_in, 3, 3, generator=generator) * 0.05
        state[f"features.{index}.weight"] = weight
        state[f"features.{index}.bias"] = torch.randn(c_out, generator=generator) * 0.05
    state["classifier.0.weight"] = torch.randn(8, 4, generator=generator)
    path = tmp_path_factory.mktemp("hub_home") / "hub" / "checkpoints" / VGG_FILE
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return path, state


def assert_features_equal(model: LPIPS, state: dict[str, torch.Tensor]) -> None:
    loaded = model.features.state_dict()
    assert len(loaded) == 26  # 13 convolutions, weight and bias
    for name, value in loaded.items():
        assert torch.equal(value, state[f"features.{name}"]), name


# ---------------------------------------------------------------------------- the distance


def test_identical_images_give_exactly_zero_others_positive_and_symmetric() -> None:
    model = random_lpips("vgg")
    x, y = images(0), images(1)
    y[1] = x[1]  # one identical pair inside a batch of different ones

    distance = model(x, y)

    assert distance.shape == (3,)
    assert distance[1].item() == 0.0
    assert torch.all(distance[[0, 2]] > 0)
    assert torch.equal(model(x, x), torch.zeros(3))
    assert torch.equal(model(y, x), distance)


def test_batch_gives_the_same_distances_as_its_images_one_by_one() -> None:
    model = random_lpips("vgg")
    x, y = images(2), images(3)

    together = model(x, y)
    alone = torch.cat([model(x[i : i + 1], y[i : i + 1]) for i in range(3)])

    torch.testing.assert_close(together, alone, rtol=0, atol=1e-6)


def test_gradients_reach_the_images_not_the_parameters() -> None:
    model = random_lpips("vgg")
    model.train()  # a parent module's .train() must not unfreeze it
    x = images(4, batch=2).requires_grad_(True)

    model(x, images(5, batch=2)).sum().backward()

    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert not model.training
    assert all(not p.requires_grad and p.grad is None for p in model.parameters())


@pytest.mark.parametrize(
    "shape_x, shape_y, dtype",
    [
        ((2, 3, 31, 64), (2, 3, 31, 64), torch.float32),  # too small
        ((2, 1, 32, 32), (2, 1, 32, 32), torch.float32),  # not RGB
        ((2, 3, 32, 32), (1, 3, 32, 32), torch.float32),  # shapes differ
        ((3, 32, 32), (3, 32, 32), torch.float32),  # no batch axis
        ((2, 3, 32, 32), (2, 3, 32, 32), torch.uint8),  # not [-1, 1] floats
    ],
)
def test_rejects_images_it_cannot_compare(shape_x: tuple, shape_y: tuple, dtype: torch.dtype) -> None:
    with pytest.raises(ValueError, match="LPIPS"):
        random_lpips("alex")(torch.zeros(shape_x, dtype=dtype), torch.zeros(shape_y, dtype=dtype))


@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_matches_the_formula_computed_step_by_step(net: str) -> None:
    """Scaling, taps, unit normalisation, linear weights, spatial mean and layer sum."""
    model = random_lpips(net)
    lin = torch.load(torchmetrics_lin_file(net), weights_only=True, map_location="cpu")
    x, y = images(6, batch=2, size=48), images(7, batch=2, size=48)

    def activations(batch: torch.Tensor) -> list[torch.Tensor]:
        shift = torch.tensor(SHIFT).view(1, 3, 1, 1)
        scale = torch.tensor(SCALE).view(1, 3, 1, 1)
        h, kept = (batch - shift) / scale, []
        for index, layer in enumerate(model.features):
            h = layer(h)
            if index in TAPS[net]:
                kept.append(h.clone())
        return kept

    with torch.no_grad():
        expected = torch.zeros(2, dtype=torch.float64)
        for k, (fx, fy) in enumerate(zip(activations(x), activations(y))):
            assert fx.shape[1] == CHANNELS[net][k]
            fx, fy = fx.double(), fy.double()
            nx = fx / (fx.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            ny = fy / (fy.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            weights = lin[f"lin{k}.model.1.weight"].double().view(1, -1, 1, 1)
            expected += ((nx - ny) ** 2 * weights).sum(dim=1).mean(dim=(1, 2))

    torch.testing.assert_close(model(x, y).double(), expected, rtol=1e-5, atol=1e-7)


def test_moves_to_float64_with_its_buffers() -> None:
    model = LPIPS("alex", pretrained=False)
    x, y = images(12), images(13)
    single = model(x, y)

    model.to(torch.float64)
    double = model(x.double(), y.double())

    assert model.shift.dtype == model.scale.dtype == double.dtype == torch.float64
    torch.testing.assert_close(double, single.double(), rtol=1e-5, atol=1e-7)


def test_bfloat16_autocast_keeps_a_float32_head() -> None:
    model = random_lpips("vgg")
    x, y = images(8, batch=2), images(9, batch=2)

    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x, y)
        same = model(x, x)

    assert low.dtype == torch.float32
    assert torch.equal(same, torch.zeros(2))
    torch.testing.assert_close(low, model(x, y), rtol=2e-2, atol=0)


def test_random_trunk_is_reproducible_and_leaves_the_global_stream_alone() -> None:
    torch.manual_seed(1)
    first = LPIPS("alex", pretrained=False)
    torch.manual_seed(2)
    state = torch.random.get_rng_state()
    second = LPIPS("alex", pretrained=False)
    assert torch.equal(torch.random.get_rng_state(), state)
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b)


def test_rejects_unknown_net_and_contradictory_options(vgg_checkpoint: tuple[Path, dict]) -> None:
    with pytest.raises(ConfigError, match="vgg19"):
        LPIPS("vgg19", pretrained=False)
    with pytest.raises(ConfigError, match="pretrained=False"):
        LPIPS("vgg", pretrained=False, backbone_path=vgg_checkpoint[0])


# ---------------------------------------------------------------------------- linear weights


@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_linear_weights_are_the_v01_files_bundled_with_torchmetrics(net: str) -> None:
    bundled = torch.load(torchmetrics_lin_file(net), weights_only=True, map_location="cpu")
    model = random_lpips(net)
    for k, lin in enumerate(model.lins):
        assert torch.equal(lin.weight, bundled[f"lin{k}.model.1.weight"])


def test_linear_weights_from_lin_path_and_refusal_of_a_wrong_file(tmp_path: Path) -> None:
    bundled = torch.load(torchmetrics_lin_file("alex"), weights_only=True, map_location="cpu")
    scaled = {name: value * 2 for name, value in bundled.items()}
    torch.save(scaled, tmp_path / "alex.pth")
    model = LPIPS("alex", pretrained=False, lin_path=tmp_path / "alex.pth")
    assert torch.equal(model.lins[4].weight, scaled["lin4.model.1.weight"])

    vgg_lin = torch.load(torchmetrics_lin_file("vgg"), weights_only=True, map_location="cpu")
    torch.save(vgg_lin, tmp_path / "vgg.pth")
    with pytest.raises(CheckpointError, match="lin2.model.1.weight"):
        LPIPS("alex", pretrained=False, lin_path=tmp_path / "vgg.pth")

    # a distance must not go negative
    negative = {**bundled, "lin3.model.1.weight": -bundled["lin3.model.1.weight"]}
    torch.save(negative, tmp_path / "neg.pth")
    with pytest.raises(CheckpointError, match="lin3.model.1.weight has negative weights"):
        LPIPS("alex", pretrained=False, lin_path=tmp_path / "neg.pth")


# ---------------------------------------------------------------------------- trunk weights


def test_loads_a_torchvision_checkpoint_given_by_path(vgg_checkpoint: tuple[Path, dict]) -> None:
    path, state = vgg_checkpoint
    assert_features_equal(LPIPS("vgg", backbone_path=path), state)


def test_finds_the_checkpoint_in_the_torch_hub_cache(
    vgg_checkpoint: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, state = vgg_checkpoint
    monkeypatch.setenv("TORCH_HOME", str(path.parents[2]))  # <TORCH_HOME>/hub/checkpoints/<file>
    assert_features_equal(LPIPS("vgg"), state)


@pytest.mark.parametrize("point_at", ["file", "folder"])
def test_finds_the_checkpoint_through_the_environment(
    vgg_checkpoint: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch, point_at: str
) -> None:
    path, state = vgg_checkpoint
    monkeypatch.setenv("SPHINX_LPIPS_BACKBONE", str(path if point_at == "file" else path.parent))
    assert_features_equal(LPIPS("vgg"), state)


@pytest.mark.parametrize(
    "change, named",
    [
        ("drop", "features.28.bias"),
        ("reshape", "features.0.weight"),
        ("unexpected", "features.30.weight"),
        ("unknown", "fc.weight"),
    ],
)
def test_refuses_a_checkpoint_it_does_not_recognise(
    vgg_checkpoint: tuple[Path, dict], tmp_path: Path, change: str, named: str
) -> None:
    state = dict(vgg_checkpoint[1])
    if change == "drop":
        del state[named]
    elif change == "reshape":
        state[named] = torch.zeros(64, 3, 5, 5)
    else:
        state[named] = torch.zeros(3)
    path = tmp_path / VGG_FILE
    torch.save(state, path)

    with pytest.raises(CheckpointError) as caught:
        LPIPS("vgg", backbone_path=path)
    message = str(caught.value)
    assert named in message and str(path) in message and "\n" not in message


def test_missing_checkpoint_offline_says_where_to_put_it_and_how_to_go_without(tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as caught:
        LPIPS("vgg")
    message = str(caught.value)
    assert VGG_FILE in message
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints") in message
    assert "lpips_weight=0" in message and "\n" not in message


def test_a_download_with_the_wrong_hash_is_refused_and_removed(
    monkeypatch: pytest.MonkeyPatch, vgg_checkpoint: tuple[Path, dict], tmp_path: Path
) -> None:
    requests = []

    def fake_download(url: str, *, cache_dir: Path, filename: str, progress: bool, sha256: None = None) -> Path:
        requests.append((url, cache_dir, filename))
        target = Path(cache_dir) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(vgg_checkpoint[0].read_bytes())  # a valid file, but not torchvision's
        return target

    monkeypatch.setattr("sphinx.utils.download.download", fake_download)
    with pytest.raises(DownloadError, match="sha256") as caught:
        LPIPS("vgg", progress=False)
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    assert requests == [("https://download.pytorch.org/models/vgg16-397923af.pth", hub, VGG_FILE)]
    assert not (hub / VGG_FILE).exists()
    assert "lpips_weight=0" in str(caught.value)

    # the same file accepted when its hash is the expected one: the download path loads it
    from sphinx.utils.download import file_sha256

    prefix = file_sha256(vgg_checkpoint[0])[:8]
    trunk = dataclasses.replace(lpips_module._TRUNKS["vgg"], sha256_prefix=prefix)
    monkeypatch.setitem(lpips_module._TRUNKS, "vgg", trunk)
    assert_features_equal(LPIPS("vgg", progress=False), vgg_checkpoint[1])


# ---------------------------------------------------------------------------- references


def _reference(kind: str, net: str) -> torch.nn.Module:
    """The reference LPIPS with a random trunk and its own bundled v0.1 linear weights."""
    pytest.importorskip("torchvision")
    if kind == "lpips":
        lpips = pytest.importorskip("lpips")
        return lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False).eval()
    from torchmetrics.functional.image.lpips import _LPIPS

    return _LPIPS(pretrained=True, net=net, pnet_rand=True).eval()


@pytest.mark.parametrize("kind", ["lpips", "torchmetrics"])
@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_equals_the_reference_implementation(kind: str, net: str) -> None:
    reference = _reference(kind, net)
    ours = LPIPS(net, pretrained=False)
    # reference names are "slice<k>.<torchvision index>.<weight|bias>"
    trunk = {name.split(".", 1)[1]: value for name, value in reference.net.state_dict().items()}
    ours.features.load_state_dict(trunk, strict=True)
    x, y = images(10, batch=4, size=64), images(11, batch=4, size=64)

    with torch.no_grad():
        expected = reference(x, y).reshape(4)

    torch.testing.assert_close(ours(x, y), expected, rtol=0, atol=1e-5)
