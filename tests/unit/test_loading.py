"""load_generator: every published format, no flags, strict on parameters, never runs stored code."""

from __future__ import annotations

import hashlib
import http.server
import logging
import os
import shutil
import threading
from functools import partial

import pytest
import torch

from sphinx.errors import CheckpointError, DownloadError
from sphinx.generators import load_generator, presets

TOLERANCE = 1e-4


@pytest.fixture(autouse=True)
def isolated_hub_cache(tmp_path, monkeypatch):
    """Downloads land in a private cache, never in the user's."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


@pytest.fixture
def port_files(fixtures_root):
    folder = fixtures_root / "rosinality"
    return {
        name: (folder / f"{name}.pt", torch.load(folder / f"{name}_cases.pt", weights_only=True))
        for name in ("tiny_g32", "tiny_g64")
    }


@pytest.mark.parametrize("name", ["tiny_g32", "tiny_g64"])
def test_port_checkpoints_load_with_no_flags_and_name_what_was_inferred(port_files, name, caplog):
    path, cases = port_files[name]
    with caplog.at_level(logging.INFO, logger="sphinx"):
        generator = load_generator(path)
    meta = cases["meta"]
    assert generator.resolution == meta["constructor"]["size"]
    assert generator.style_dim == meta["constructor"]["style_dim"]
    assert generator.n_mlp == meta["constructor"]["n_mlp"]
    assert generator.channels == meta["channels"]
    assert not generator.training and not any(p.requires_grad for p in generator.parameters())
    assert f"{generator.resolution} px, style_dim {generator.style_dim}" in caplog.text
    with torch.no_grad():
        assert (generator(cases["a"]["z"]) - cases["a"]["image"]).abs().max() <= TOLERANCE
        truncated = generator(cases["c"]["z"], truncation=cases["c"]["truncation"])  # uses latent_avg
    assert (truncated - cases["c"]["image"]).abs().max() <= TOLERANCE


@pytest.fixture(scope="module")
def ada(fixtures_root):
    folder = fixtures_root / "ada"
    return load_generator(folder / "tiny_ada32.pkl"), torch.load(folder / "tiny_ada32_cases.pt", weights_only=True)


@torch.no_grad()
def test_nvidia_pickle_converts_and_reproduces_every_case(ada):
    generator, cases = ada
    assert generator.resolution == 32 and generator.n_latent == cases["num_ws"] == 8
    assert generator.channels == {int(k): v for k, v in cases["channels"].items()}
    assert generator.conv_clamp == 256
    torch.testing.assert_close(generator.latent_avg, cases["w_avg"], rtol=0, atol=0)
    close = partial(torch.testing.assert_close, rtol=TOLERANCE, atol=TOLERANCE)
    close(generator.mapping(cases["z"])[:, None].expand(-1, 8, -1), cases["ws"])
    close(generator(cases["z"]), cases["img_const_psi1"])
    close(generator.synthesis(cases["ws"]), cases["img_synthesis_from_ws"])
    close(generator(cases["z"], truncation=cases["truncation_psi"]), cases["img_const_psi0.7"])
    close(generator.synthesis(cases["ws_mixed"]), cases["img_synthesis_ws_mixed"])
    silent = [torch.zeros_like(n) for n in generator.stored_noise()]
    close(generator.synthesis(cases["ws"], noise=silent), cases["img_synthesis_noise_none"])
    assert (generator(cases["z"]) - cases["img_G_nonema_const_psi1"]).abs().max() > 0.1  # G_ema, not G


@torch.no_grad()
def test_nvidia_conv_clamp_is_applied_where_the_reference_applies_it(fixtures_root, ada):
    _, cases = ada
    generator = load_generator(fixtures_root / "ada" / "tiny_ada32.pkl")
    generator.conv_clamp = cases["conv_clamp_override"]
    torch.testing.assert_close(
        generator.synthesis(cases["ws"]), cases["img_synthesis_conv_clamp1"], rtol=TOLERANCE, atol=TOLERANCE
    )


def test_a_bare_state_dict_loads_like_the_full_checkpoint(port_files, tmp_path):
    path, cases = port_files["tiny_g32"]
    bare = tmp_path / "bare.pth"
    torch.save(torch.load(path, weights_only=True)["g_ema"], bare)
    with torch.no_grad():
        assert (load_generator(bare)(cases["a"]["z"]) - cases["a"]["image"]).abs().max() <= TOLERANCE


def test_missing_noise_and_kernel_buffers_are_filled_and_reported_once(port_files, tmp_path, caplog):
    path, cases = port_files["tiny_g32"]
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["g_ema"] = {
        k: v for k, v in checkpoint["g_ema"].items() if not k.startswith("noises.") and not k.endswith(".kernel")
    }
    stripped = tmp_path / "old_256_style.pt"
    torch.save(checkpoint, stripped)
    with caplog.at_level(logging.WARNING, logger="sphinx"):
        first = load_generator(stripped)
    warnings = [r for r in caplog.records if "lacks" in r.getMessage()]
    assert len(warnings) == 1 and "FIR kernels and noise maps" in warnings[0].getMessage()
    second = load_generator(stripped)
    b = cases["b"]
    with torch.no_grad():  # explicit noise: the kernels were rebuilt exactly
        assert (first.synthesis(b["w_plus"], noise=b["noise"]) - b["image"]).abs().max() <= TOLERANCE
        assert torch.equal(first(cases["a"]["z"]), second(cases["a"]["z"]))  # filled noise is seeded


def rewrite(path, tmp_path, edit, name="edited.pt"):
    checkpoint = torch.load(path, weights_only=True)
    edit(checkpoint["g_ema"])
    out = tmp_path / name
    torch.save(checkpoint, out)
    return out


def test_a_missing_parameter_is_refused_by_name(port_files, tmp_path):
    path = rewrite(port_files["tiny_g32"][0], tmp_path, lambda sd: sd.pop("conv1.activate.bias"))
    with pytest.raises(CheckpointError, match=r"edited\.pt.*missing 1 parameters.*conv1\.activate\.bias"):
        load_generator(path)


def test_an_unexpected_tensor_is_refused(port_files, tmp_path):
    path = rewrite(port_files["tiny_g32"][0], tmp_path, lambda sd: sd.__setitem__("extra.weight", torch.zeros(1)))
    with pytest.raises(CheckpointError, match="unexpected tensors.*extra.weight"):
        load_generator(path)


def test_a_misshapen_parameter_is_refused(port_files, tmp_path):
    path = rewrite(
        port_files["tiny_g32"][0], tmp_path, lambda sd: sd.__setitem__("conv1.activate.bias", torch.zeros(5))
    )
    with pytest.raises(CheckpointError, match=r"conv1\.activate\.bias has shape \[5\]"):
        load_generator(path)


def test_a_truncated_file_is_refused_as_truncated_or_corrupt(port_files, tmp_path):
    data = port_files["tiny_g32"][0].read_bytes()
    broken = tmp_path / "half.pt"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"half\.pt: truncated or corrupt"):
        load_generator(broken)


class _Payload:
    """Pickles into a call that would create a file: the attack a checkpoint can carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pt_file_that_would_run_a_command_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    hostile = tmp_path / "hostile.pt"
    torch.save({"g_ema": {"style.1.weight": torch.zeros(1)}, "hook": _Payload(marker)}, hostile)
    with pytest.raises(CheckpointError, match=r"hostile\.pt: refused.*not executed"):
        load_generator(hostile)
    assert not marker.exists()


def test_a_pkl_file_that_would_run_a_command_is_refused_and_nothing_runs(tmp_path):
    import pickle

    marker = tmp_path / "pwned"
    hostile = tmp_path / "hostile.pkl"
    hostile.write_bytes(pickle.dumps({"G_ema": _Payload(marker)}))
    with pytest.raises(CheckpointError, match=r"hostile\.pkl"):
        load_generator(hostile)
    assert not marker.exists()


def test_a_checkpoint_without_a_generator_is_refused(tmp_path):
    other = tmp_path / "classifier.pt"
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, other)
    with pytest.raises(CheckpointError, match=r"classifier\.pt: not a generator checkpoint"):
        load_generator(other)


def test_an_unknown_format_is_refused(tmp_path):
    text = tmp_path / "weights.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=r"weights\.txt: unknown checkpoint format"):
        load_generator(text)


@torch.no_grad()
def test_a_lower_output_resolution_renders_the_intermediate_skip_rgb(port_files):
    path, cases = port_files["tiny_g64"]
    full = load_generator(path)
    recorded = {}
    full.to_rgbs[2].register_forward_hook(lambda m, i, o: recorded.__setitem__("rgb32", o))
    full(cases["a"]["z"])
    cropped = load_generator(path, output_resolution=32)
    assert cropped.resolution == 32 and cropped.n_latent == 8
    assert torch.equal(cropped(cases["a"]["z"]), recorded["rgb32"])


def test_a_resolution_the_checkpoint_cannot_give_is_refused(port_files):
    with pytest.raises(CheckpointError, match=r"cannot render at 128 px.*from 4 to 64"):
        load_generator(port_files["tiny_g64"][0], output_resolution=128)


def test_a_file_url_goes_through_the_download_cache(port_files, tmp_path):
    path, cases = port_files["tiny_g32"]
    generator = load_generator(path.resolve().as_uri(), progress=False)
    cached = tmp_path / "torch_home" / "hub" / "checkpoints" / path.name
    assert cached.is_file() and cached.read_bytes() == path.read_bytes()
    with torch.no_grad():
        assert (generator(cases["a"]["z"]) - cases["a"]["image"]).abs().max() <= TOLERANCE


@pytest.fixture
def local_server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_preset_served_on_localhost_is_downloaded_and_checksum_verified(port_files, local_server, monkeypatch):
    root, base = local_server
    path, cases = port_files["tiny_g32"]
    shutil.copy(path, root / "tiny.pt")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setattr(
        presets,
        "PRESETS",
        {
            "tiny": presets.Preset("tiny", f"{base}/tiny.pt", digest, 32, "test"),
            "tampered": presets.Preset("tampered", f"{base}/tiny.pt", "0" * 64, 32, "test"),
        },
    )
    with torch.no_grad():
        assert (load_generator("tiny", progress=False)(cases["a"]["z"]) - cases["a"]["image"]).abs().max() <= TOLERANCE
    shutil.rmtree(os.environ["TORCH_HOME"])
    with pytest.raises(DownloadError, match="sha256|SHA-256|checksum"):
        load_generator("tampered", progress=False)
    assert not any((root.parent / "torch_home").rglob("tiny.pt"))


def _tiny_weights_of_a_huge_generator(resolution: int) -> dict:
    """A few KB of 1-channel weights declaring a ``resolution`` px generator, noise maps left out."""
    from sphinx.generators.stylegan2 import Generator

    channels = {4 * 2**k: 1 for k in range(resolution.bit_length() - 2)}
    with torch.device("meta"):
        reference = Generator(resolution=resolution, style_dim=8, n_mlp=1, channels=channels)
    return {
        key: torch.zeros(t.shape)
        for key, t in reference.state_dict().items()
        if not key.startswith("noises.") and not key.endswith(".kernel")
    }


@pytest.mark.parametrize(
    "resolution, message", [(8192, "declares a 8192 px generator"), (4096, "MiB of noise buffers")]
)
def test_a_small_file_declaring_a_huge_generator_is_refused_before_allocating(tmp_path, resolution, message):
    path = tmp_path / "huge.pt"
    torch.save({"g_ema": _tiny_weights_of_a_huge_generator(resolution)}, path)
    assert path.stat().st_size < 200_000
    with pytest.raises(CheckpointError) as refused:
        load_generator(path)
    assert str(refused.value).startswith(f"{path}: ") and message in str(refused.value)


def test_a_checkpoint_with_compressed_records_is_refused_before_inflating(port_files, tmp_path):
    import zipfile

    source = port_files["tiny_g32"][0]
    bomb = tmp_path / "deflated.pt"
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as rewritten:
        for record in original.infolist():
            rewritten.writestr(record.filename, original.read(record))
    with pytest.raises(CheckpointError, match=r"deflated\.pt: .*compressed records"):
        load_generator(bomb)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.__setitem__("latent_avg", torch.zeros(7)), "latent_avg has 7 values"),
        (lambda c: c["g_ema"].__setitem__(3, torch.zeros(1)), "keys that are not strings"),
    ],
    ids=["latent_avg-size", "integer-key"],
)
def test_inconsistent_checkpoints_are_one_line_naming_the_file(port_files, tmp_path, edit, message):
    checkpoint = torch.load(port_files["tiny_g32"][0], weights_only=True)
    edit(checkpoint)
    path = tmp_path / "odd.pt"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError) as refused:
        load_generator(path)
    assert str(refused.value).startswith(f"{path}: ") and message in str(refused.value)


def test_a_text_file_renamed_pt_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("these are my notes, not a checkpoint\n" * 20)
    with pytest.raises(CheckpointError) as refused:
        load_generator(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and "not a torch checkpoint" in message
