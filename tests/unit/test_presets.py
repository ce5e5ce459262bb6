"""The registry of published checkpoints and resolving a checkpoint source to a local file."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sphinx.errors import CheckpointError, DownloadError
from sphinx.generators import presets
from sphinx.generators.presets import PRESETS, Preset, resolve_checkpoint
from sphinx.utils.download import cached_path, default_cache_dir

EXPECTED = {
    "ffhq1024": ("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/ffhq.pkl", 1024),
    "metfaces": ("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metfaces.pkl", 1024),
    "afhqcat": ("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/afhqcat.pkl", 512),
    "afhqdog": ("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/afhqdog.pkl", 512),
    "afhqwild": ("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/afhqwild.pkl", 512),
    "brecahad": ("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/brecahad.pkl", 512),
    "ffhq256": (
        "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files/stylegan2-ffhq-256x256.pkl",
        256,
    ),
}

# the SPHInX authors' generator: the PyTorch port's conversion of FFHQ config-f (a .pt on Drive)
AUTHORS = {
    "stylegan2-ffhq-config-f": (
        "https://drive.usercontent.google.com/download?id=1JCBiKY_yUixTa6F1eflABL88T4cii2GR&export=download&confirm=t",
        1024,
    )
}

# shipped inside the package, so they resolve offline
SHIPPED = {"demo": ("package://sphinx/assets/demo_prior.pt", 64)}


@pytest.fixture(autouse=True)
def _offline_private_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # a test that slips through to a download fails instead of reaching the internet
    monkeypatch.setenv("SPHINX_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def test_registered_presets_are_exactly_the_published_and_shipped_ones() -> None:
    assert {name: (preset.url, preset.resolution) for name, preset in PRESETS.items()} == {
        **EXPECTED,
        **AUTHORS,
        **SHIPPED,
    }


def test_the_authors_generator_is_cached_under_its_published_file_name() -> None:
    preset = PRESETS["stylegan2-ffhq-config-f"]
    assert preset.filename == "stylegan2-ffhq-config-f.pt" and preset.sha256 is None
    with pytest.raises(DownloadError, match="stylegan2-ffhq-config-f.pt"):
        resolve_checkpoint("stylegan2-ffhq-config-f")  # offline: says where to put the file


def test_shipped_demo_prior_is_pinned_to_its_sha256() -> None:
    preset = PRESETS["demo"]
    shipped = Path(presets.__file__).parents[1] / "assets" / "demo_prior.pt"
    assert preset.sha256 == hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert resolve_checkpoint("demo") == shipped


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_entries_are_well_formed(name: str) -> None:
    preset = PRESETS[name]
    assert preset.name == name
    assert urlsplit(preset.url).scheme == "https" and preset.url.endswith(".pkl")
    # no hash is published for these files; a made-up one would refuse the real file
    assert preset.sha256 is None
    assert preset.description and "\n" not in preset.description


def test_registry_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        PRESETS["mine"] = PRESETS["ffhq256"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["ffhq256"].url = "https://elsewhere/x.pkl"  # type: ignore[misc]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_offline_preset_names_expected_cache_path(name: str) -> None:
    expected = cached_path(EXPECTED[name][0])
    assert expected.parent == default_cache_dir()
    with pytest.raises(DownloadError) as caught:
        resolve_checkpoint(name, progress=False)
    assert f"place the file at {expected}" in str(caught.value)


def test_preset_already_in_cache_is_used_offline() -> None:
    cached = cached_path(PRESETS["afhqdog"].url)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"weights")
    assert resolve_checkpoint("afhqdog") == cached


def test_existing_path_is_returned_as_is(tmp_path: Path) -> None:
    checkpoint = tmp_path / "network.pkl"
    checkpoint.write_bytes(b"weights")
    assert resolve_checkpoint(checkpoint) == checkpoint
    assert resolve_checkpoint(str(checkpoint)) == checkpoint


def test_file_url_is_downloaded_into_the_cache(tmp_path: Path) -> None:
    source = tmp_path / "elsewhere" / "network.pkl"
    source.parent.mkdir()
    source.write_bytes(b"weights")
    resolved = resolve_checkpoint(source.as_uri(), progress=False)
    assert resolved == default_cache_dir() / "network.pkl"
    assert resolved.read_bytes() == b"weights"


def test_http_url_goes_through_download() -> None:
    url = "https://example.invalid/models/network.pkl"
    with pytest.raises(DownloadError, match=f"place the file at {default_cache_dir() / 'network.pkl'}"):
        resolve_checkpoint(url)


def test_unknown_name_lists_presets() -> None:
    with pytest.raises(CheckpointError) as caught:
        resolve_checkpoint("celebahq")
    message = str(caught.value)
    assert "neither a file, a URL nor a known preset" in message
    assert all(name in message for name in EXPECTED)
    assert "\n" not in message


def test_near_miss_suggests_the_preset() -> None:
    with pytest.raises(CheckpointError, match="did you mean ffhq256"):
        resolve_checkpoint("ffhq265")


@pytest.mark.parametrize("source", ["missing.pkl", "models/network", "./ffhq1024"])
def test_missing_path_says_no_such_file(source: str) -> None:
    with pytest.raises(CheckpointError, match=f"{source}: no such file"):
        resolve_checkpoint(source)


def test_missing_path_object_says_no_such_file(tmp_path: Path) -> None:
    missing = tmp_path / "ffhq1024"
    with pytest.raises(CheckpointError, match="no such file"):
        resolve_checkpoint(missing)


def test_folder_is_not_a_checkpoint(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    with pytest.raises(CheckpointError, match="is a folder"):
        resolve_checkpoint(folder)


def test_package_url_resolves_to_the_shipped_file() -> None:
    resolved = resolve_checkpoint("package://sphinx/assets/demo_prior.pt")
    assert resolved == Path(presets.__file__).parents[1] / "assets" / "demo_prior.pt"


@pytest.mark.parametrize(
    "url", ["package://this/zen.pt", "package://sphinx/errors.py", "package://sphinx.generators/presets.py"]
)
def test_package_urls_reach_only_sphinx_assets_and_import_nothing(url) -> None:
    import sys

    already = set(sys.modules)
    with pytest.raises(CheckpointError, match="names only sphinx's own assets"):
        resolve_checkpoint(url)
    assert "this" not in set(sys.modules) - already  # importing `this` would run its code


def test_missing_package_resource_is_a_checkpoint_error() -> None:
    with pytest.raises(CheckpointError, match="assets/absent.pt"):
        resolve_checkpoint("package://sphinx/assets/absent.pt")
    with pytest.raises(CheckpointError, match="own assets"):
        resolve_checkpoint("package://no_such_package_xyz/net.pt")
    with pytest.raises(CheckpointError, match="package://<package>"):
        resolve_checkpoint("package://sphinx/../outside.pt")


def test_packaged_preset_checks_its_sha256(monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = Path(presets.__file__).parents[1] / "assets" / "demo_prior.pt"
    good = Preset(
        name="demo",
        url="package://sphinx/assets/demo_prior.pt",
        sha256=hashlib.sha256(shipped.read_bytes()).hexdigest(),
        resolution=64,
        description="a shipped file",
    )
    bad = dataclasses.replace(good, name="broken", sha256="0" * 64)
    monkeypatch.setattr(presets, "PRESETS", {good.name: good, bad.name: bad})
    assert resolve_checkpoint("demo") == shipped
    with pytest.raises(CheckpointError, match="does not match its sha256"):
        resolve_checkpoint("broken")
