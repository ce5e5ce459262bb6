"""Spec of sphinx.generators.nvidia_pickle: NVIDIA StyleGAN2-ADA pickles, read without running them.

What a reader of this file should take away:

* ``read_nvidia_pickle`` returns G_ema (never G) renamed to the PyTorch port's layout, with values
  bit-identical to the tensors NVIDIA's own loader yields, ``w_avg`` as ``latent_avg`` and the
  recorded ``conv_clamp``.
* Pickles re-written by other writers (protocol 2 and 3, numpy 2, PyTorch 1.x tables, forks that
  move the persistence module) read the same.
* Nothing in the file is ever executed: foreign globals are refused before they are called, and
  the network source text stored in the file is never run. Hostile test pickles below create a
  marker file when given to plain ``pickle.loads``; the reader must refuse them and leave no file.
* Every refusal is a one-line ``CheckpointError`` that names the file.

Test pickles are written by a small stand-in for NVIDIA's writer (``_NvidiaWriter``): it loads the
trusted fixture with passive stand-ins for ``torch_utils.persistence`` and ``dnnlib``, lets the test
change the passive records, and pickles them again with the same globals NVIDIA's code would emit.
"""

from __future__ import annotations

import builtins
import collections
import io
import json
import os
import pickle
import pickletools
import struct
import sys
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from helpers.crafted import hash_bomb
from sphinx.errors import CheckpointError
from sphinx.generators import nvidia_pickle
from sphinx.generators.nvidia_pickle import NvidiaGenerator, read_nvidia_pickle

# --------------------------------------------------------------------------------------------
# Fixture data
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ada_dir(fixtures_root: Path) -> Path:
    return fixtures_root / "ada"


@pytest.fixture(scope="module")
def tiny_pickle(ada_dir: Path) -> Path:
    return ada_dir / "tiny_ada32.pkl"


@pytest.fixture(scope="module")
def cases(ada_dir: Path) -> dict:
    return torch.load(ada_dir / "tiny_ada32_cases.pt", weights_only=True)


@pytest.fixture(scope="module")
def param_manifest(ada_dir: Path) -> dict:
    return json.loads((ada_dir / "param_manifest.json").read_text())


@pytest.fixture(scope="module")
def baseline(tiny_pickle: Path) -> NvidiaGenerator:
    """The fixture as read by the code under test; variants must read bit-identically."""
    return read_nvidia_pickle(tiny_pickle)


def _apply_transform(tensor: torch.Tensor, transform: str, target_shape: list[int]) -> torch.Tensor:
    """The manifest's ``rosinality_transform`` column, applied to one ADA tensor."""
    if transform == "copy":
        return tensor
    if transform == "unsqueeze(0)":
        return tensor.unsqueeze(0)
    if transform.startswith("reshape"):
        return tensor.reshape(target_shape)
    raise AssertionError(f"unknown transform in the manifest: {transform}")


def _assert_same_generator(actual: NvidiaGenerator, expected: NvidiaGenerator) -> None:
    assert list(actual.state_dict) == list(expected.state_dict)
    for name, tensor in expected.state_dict.items():
        assert torch.equal(actual.state_dict[name], tensor), name
    assert torch.equal(actual.latent_avg, expected.latent_avg)
    assert (actual.conv_clamp, actual.lr_mlp, actual.init_kwargs) == (
        expected.conv_clamp,
        expected.lr_mlp,
        expected.init_kwargs,
    )


# --------------------------------------------------------------------------------------------
# A stand-in for NVIDIA's writer (test-side only; nothing here is used by the code under test)
# --------------------------------------------------------------------------------------------

_PLACEHOLDER_SOURCE = "# network source text would be here\n"


class _Record:
    """A passive persistent object: what ``_reconstruct_persistent_obj(meta)`` was called with."""

    def __init__(self, meta: dict) -> None:
        self.meta = meta

    @property
    def state(self) -> dict:
        return self.meta["state"]

    def child(self, dotted: str) -> _Record:
        record = self
        for name in dotted.split("."):
            record = record.state["_modules"][name]
        return record

    def __reduce__(self) -> tuple:
        # The same call NVIDIA's persistence wrapper emits: one REDUCE of the meta dict.
        return (_reconstruct_persistent_obj, (self.meta,))


def _reconstruct_persistent_obj(meta: dict) -> _Record:
    """Passive replacement for NVIDIA's function, which exec()s meta['module_src']."""
    return _Record(meta)


class _EasyDict(dict):
    """Pickles as ``dnnlib.util.EasyDict`` (NEWOBJ + SETITEMS), like NVIDIA's kwargs dicts."""


_reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
_EasyDict.__module__, _EasyDict.__qualname__ = "dnnlib.util", "EasyDict"


def _safe_load_from_bytes(payload: bytes) -> Any:
    return torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")


class _TrustedFixtureUnpickler(pickle.Unpickler):
    """Loads the (trusted) fixture with passive stand-ins for NVIDIA's code-running globals."""

    def find_class(self, module: str, name: str) -> Any:
        if name == "_reconstruct_persistent_obj":
            return _reconstruct_persistent_obj
        if (module, name) == ("dnnlib.util", "EasyDict"):
            return _EasyDict
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _safe_load_from_bytes
        return super().find_class(module, name)


def _records(value: Any) -> Iterator[_Record]:
    """Every record reachable from ``value`` (through states and containers)."""
    seen: set[int] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, _Record):
            yield item
            stack.append(item.state)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


class _NvidiaWriter:
    """Writes pickles the way NVIDIA's code would, from passive records."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def load_fixture(self, path: Path) -> dict:
        with open(path, "rb") as file, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # numpy 2 warns on numpy.core
            return _TrustedFixtureUnpickler(file).load()

    def write(self, data: Any, name: str, *, protocol: int = 4) -> Path:
        path = self.directory / name
        path.write_bytes(pickle.dumps(data, protocol=protocol))
        return path


@pytest.fixture
def writer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> _NvidiaWriter:
    """A writer; the stand-in modules exist in sys.modules only while the test runs (pickle
    looks a global up by module and name before it writes the reference)."""
    persistence = types.ModuleType("torch_utils.persistence")
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util = types.ModuleType("dnnlib.util")
    util.EasyDict = _EasyDict
    for module_name, module in (
        ("torch_utils", types.ModuleType("torch_utils")),
        ("torch_utils.persistence", persistence),
        ("dnnlib", types.ModuleType("dnnlib")),
        ("dnnlib.util", util),
    ):
        monkeypatch.setitem(sys.modules, module_name, module)
    return _NvidiaWriter(tmp_path)


def _outer_globals(data: bytes) -> set[str]:
    """``"module name"`` of every GLOBAL opcode (protocols <= 3 use GLOBAL, 4+ STACK_GLOBAL)."""
    return {arg for opcode, arg, _ in pickletools.genops(data) if opcode.name == "GLOBAL"}


def _rewrite_strings(data: bytes, replacements: dict[str, str]) -> bytes:
    """Replace whole string literals in a pickle's opcode stream.

    FRAME opcodes are dropped (frames are optional and their lengths would change); memo indices
    are unaffected because protocol 4 memoizes with explicit MEMOIZE opcodes.
    """
    operations = list(pickletools.genops(data))
    out = bytearray()
    for index, (opcode, arg, position) in enumerate(operations):
        end = operations[index + 1][2] if index + 1 < len(operations) else len(data)
        if opcode.name == "FRAME":
            continue
        if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE") and arg in replacements:
            encoded = replacements[arg].encode("utf-8")
            out += b"\x8c" + bytes([len(encoded)]) + encoded  # SHORT_BINUNICODE
        else:
            out += data[position:end]
    return bytes(out)


class _Call:
    """Pickles as ``func(*args)``: the classic way a pickle runs code on load."""

    def __init__(self, func: Callable, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return (self.func, self.args)


# --------------------------------------------------------------------------------------------
# Conversion of the fixture
# --------------------------------------------------------------------------------------------


def test_state_dict_is_g_ema_converted_bit_identically(baseline, cases, param_manifest) -> None:
    expected_ada = cases["g_ema_state_dict"]
    entries = param_manifest["configs"]["tiny_ada32"]["tensors"]
    converted = {entry["rosinality_name"]: entry for entry in entries if entry["rosinality_name"]}
    assert set(baseline.state_dict) == set(converted)
    for name, entry in converted.items():
        expected = _apply_transform(
            expected_ada[entry["name"]], entry["rosinality_transform"], entry["rosinality_shape"]
        )
        actual = baseline.state_dict[name]
        assert list(actual.shape) == entry["rosinality_shape"], name
        assert actual.dtype == torch.float32, name
        assert torch.equal(actual, expected), name


def test_g_ema_is_read_not_the_training_generator(baseline, writer, tiny_pickle) -> None:
    # G and G_ema share structure but not values; a reader that picks G fails this.
    snapshot = writer.load_fixture(tiny_pickle)
    g_conv = snapshot["G"].child("synthesis.b8.conv0").state["_parameters"]["weight"]
    assert not torch.equal(baseline.state_dict["convs.0.conv.weight"][0], g_conv)


def test_latent_avg_conv_clamp_lr_and_kwargs(baseline, cases) -> None:
    assert torch.equal(baseline.latent_avg, cases["w_avg"])
    assert baseline.latent_avg.shape == (64,)
    assert baseline.conv_clamp == 256.0 and isinstance(baseline.conv_clamp, float)
    assert baseline.lr_mlp == pytest.approx(0.01)
    assert baseline.init_kwargs == cases["G_init_kwargs"]
    # Plain dicts all the way down: no stand-in classes from the file leak out.
    assert type(baseline.init_kwargs) is dict
    assert type(baseline.init_kwargs["mapping_kwargs"]) is dict
    assert type(baseline.init_kwargs["synthesis_kwargs"]) is dict


def test_order_is_the_port_state_dict_order_without_kernels(baseline, fixtures_root) -> None:
    # rosinality's tiny 32 px generator (2 mapping layers) has exactly the same key order.
    port = torch.load(fixtures_root / "rosinality" / "tiny_g32.pt", weights_only=True)["g_ema"]
    assert list(baseline.state_dict) == [key for key in port if not key.endswith(".kernel")]


def test_noise_maps_follow_the_documented_index(baseline, cases) -> None:
    # noise_j: 0 for b4.conv1, 2k-5 / 2k-4 for conv0 / conv1 of the block at 2^k.
    ada = cases["g_ema_state_dict"]
    pairs = {
        0: "synthesis.b4.conv1",
        1: "synthesis.b8.conv0",
        2: "synthesis.b8.conv1",
        5: "synthesis.b32.conv0",
        6: "synthesis.b32.conv1",
    }
    for index, layer in pairs.items():
        expected = ada[f"{layer}.noise_const"]
        assert torch.equal(baseline.state_dict[f"noises.noise_{index}"], expected[None, None])


def _synthetic_generator(config: dict) -> _Record:
    """A G_ema record tree with a manifest config's exact names and shapes (cheap zero tensors)."""
    zero = torch.zeros(())
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    fir = torch.outer(taps, taps) / 64

    def new_record(class_name: str) -> _Record:
        return _Record(
            {
                "type": "class",
                "version": 6,
                "module_src": _PLACEHOLDER_SOURCE,
                "class_name": class_name,
                "state": {"_parameters": {}, "_buffers": {}, "_modules": {}, "_non_persistent_buffers_set": set()},
            }
        )

    root = new_record("Generator")
    root.state.update(_init_args=(), _init_kwargs=json.loads(json.dumps(config["init_kwargs"])))
    for entry in config["tensors"]:
        *path, leaf = entry["name"].split(".")
        record = root
        for name in path:
            record = record.state["_modules"].setdefault(name, new_record(name))
        # Stride-0 views pickle as one element each, so the 30 M-parameter config stays small.
        tensor = fir.clone() if leaf == "resample_filter" else zero.expand(entry["shape"])
        table = "_buffers" if entry["kind"] == "buffer" else "_parameters"
        record.state[table][leaf] = tensor
    return root


@pytest.mark.parametrize(
    "config_name, port_manifest",
    [("ffhq1024_stylegan2_cfg", "manifest_ffhq1024.json"), ("paper256_cfg", "manifest_256.json")],
)
def test_real_configs_map_to_the_port_names_shapes_and_order(
    writer, param_manifest, fixtures_root, config_name, port_manifest, monkeypatch
) -> None:
    # The synthetic file's stride-0 views are exactly what the loader refuses from strangers (they
    # would materialise 120 MB from a few KB); the bound is lifted here to check the names alone.
    monkeypatch.setattr(nvidia_pickle, "tensor_bytes_budget", lambda stored_bytes: float("inf"))
    config = param_manifest["configs"][config_name]
    path = writer.write({"G_ema": _synthetic_generator(config)}, f"{config_name}.pkl")
    result = read_nvidia_pickle(path)
    port_keys = json.loads((fixtures_root / "rosinality" / port_manifest).read_text())["keys"]
    assert list(result.state_dict) == [key["key"] for key in port_keys if not key["key"].endswith(".kernel")]
    expected_shapes = {
        entry["rosinality_name"]: entry["rosinality_shape"] for entry in config["tensors"] if entry["rosinality_name"]
    }
    assert {name: list(t.shape) for name, t in result.state_dict.items()} == expected_shapes
    assert result.conv_clamp == 256.0


# --------------------------------------------------------------------------------------------
# Other writers' variants
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "protocol, expected_globals",
    [
        (2, {"__builtin__ set", "_codecs encode", "torch.storage _load_from_bytes"}),
        (3, {"builtins set", "torch.storage _load_from_bytes"}),
    ],
)
def test_repickled_with_older_protocols_reads_the_same(
    writer, tiny_pickle, baseline, protocol, expected_globals
) -> None:
    path = writer.write(writer.load_fixture(tiny_pickle), f"p{protocol}.pkl", protocol=protocol)
    # The variant really uses the older spellings the reader has to allow.
    assert expected_globals <= _outer_globals(path.read_bytes())
    _assert_same_generator(read_nvidia_pickle(path), baseline)


def test_pytorch_1_style_module_tables_read_the_same(writer, tiny_pickle, baseline) -> None:
    # PyTorch 1.x keeps the tables as OrderedDicts and lacks the newer hook-dict keys.
    snapshot = writer.load_fixture(tiny_pickle)
    kept = {
        "training",
        "_parameters",
        "_buffers",
        "_modules",
        "_non_persistent_buffers_set",
        "_backward_hooks",
        "_forward_hooks",
        "_forward_pre_hooks",
        "_state_dict_hooks",
        "_load_state_dict_pre_hooks",
    }
    for record in _records(snapshot):
        for table in ("_parameters", "_buffers", "_modules"):
            record.state[table] = collections.OrderedDict(record.state[table])
        for key in [
            key
            for key in record.state
            if key.startswith("_")
            and key.endswith("hooks")
            or key.endswith("_with_kwargs")
            or key.endswith("_always_called")
        ]:
            if key not in kept:
                del record.state[key]
    path = writer.write(snapshot, "torch1.pkl", protocol=3)
    assert "collections OrderedDict" in _outer_globals(path.read_bytes())
    _assert_same_generator(read_nvidia_pickle(path), baseline)


def test_numpy_2_scalar_reference_reads_the_same(tiny_pickle, tmp_path, baseline) -> None:
    original = tiny_pickle.read_bytes()
    assert b"numpy.core.multiarray" in original
    variant = _rewrite_strings(original, {"numpy.core.multiarray": "numpy._core.multiarray"})
    assert b"numpy._core.multiarray" in variant and b"numpy.core.multiarray" not in variant
    path = tmp_path / "numpy2.pkl"
    path.write_bytes(variant)
    _assert_same_generator(read_nvidia_pickle(path), baseline)


def test_persistence_module_of_a_fork_is_accepted(tiny_pickle, tmp_path, baseline) -> None:
    # Keyed on the function name and a module ending in "persistence", not on one module path.
    variant = _rewrite_strings(
        tiny_pickle.read_bytes(), {"torch_utils.persistence": "stylegan3.torch_utils.persistence"}
    )
    path = tmp_path / "fork.pkl"
    path.write_bytes(variant)
    _assert_same_generator(read_nvidia_pickle(path), baseline)


def test_persistence_function_from_another_module_is_refused(tiny_pickle, tmp_path) -> None:
    variant = _rewrite_strings(tiny_pickle.read_bytes(), {"torch_utils.persistence": "torch_utils.helpers"})
    path = tmp_path / "elsewhere.pkl"
    path.write_bytes(variant)
    with pytest.raises(CheckpointError, match="refused pickle global torch_utils.helpers._reconstruct"):
        read_nvidia_pickle(path)


def test_conv_clamp_is_taken_from_the_layers_when_the_kwargs_omit_it(writer, tiny_pickle) -> None:
    # StyleGAN3's copy of the network defaults conv_clamp to 256, ADA's to None: the layers decide.
    snapshot = writer.load_fixture(tiny_pickle)
    del snapshot["G_ema"].state["_init_kwargs"]["synthesis_kwargs"]["conv_clamp"]
    assert read_nvidia_pickle(writer.write(snapshot, "no_clamp_kwarg.pkl")).conv_clamp == 256.0


def test_stylegan3_style_flat_kwargs_are_read(writer, tiny_pickle, baseline) -> None:
    # StyleGAN3's networks_stylegan2.Generator takes the synthesis keywords at the top level.
    snapshot = writer.load_fixture(tiny_pickle)
    kwargs = snapshot["G_ema"].state["_init_kwargs"]
    kwargs.update(kwargs.pop("synthesis_kwargs"), fused_modconv_default="inference_only")
    result = read_nvidia_pickle(writer.write(snapshot, "flat.pkl"))
    assert result.state_dict.keys() == baseline.state_dict.keys()
    assert result.conv_clamp == 256.0
    assert result.init_kwargs["fused_modconv_default"] == "inference_only"


# --------------------------------------------------------------------------------------------
# Nothing from the file is executed
# --------------------------------------------------------------------------------------------


def _hostile_payloads(marker: Path) -> dict[str, Any]:
    """Objects whose unpickling creates ``marker`` (each proven to do so by a control below)."""
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    return {
        "os.system": {"G_ema": _Call(os.system, f"touch '{marker}'")},
        "builtins.exec": {"G_ema": _Call(builtins.exec, code)},
        "builtins.eval": {"G_ema": _Call(builtins.eval, code)},
        "builtins.open": {"G_ema": _Call(builtins.open, str(marker), "w")},
        # A tensor payload smuggling code into the inner torch.save stream.
        "inner payload": {
            "G_ema": _Call(torch.storage._load_from_bytes, pickle.dumps(_Call(builtins.exec, code), protocol=2))
        },
    }


@pytest.mark.parametrize("kind", ["os.system", "builtins.exec", "builtins.eval", "builtins.open", "inner payload"])
def test_hostile_pickles_are_refused_without_side_effect(tmp_path, kind) -> None:
    marker = tmp_path / "marker"
    data = pickle.dumps(_hostile_payloads(marker)[kind], protocol=4)
    path = tmp_path / f"{kind}.pkl"
    path.write_bytes(data)

    with pytest.raises(CheckpointError) as refused:
        read_nvidia_pickle(path)
    message = str(refused.value)
    assert not marker.exists()
    assert str(path) in message and "\n" not in message
    assert "not executed" in message and "not a plain network pickle" in message
    if kind != "inner payload":
        assert "refused pickle global" in message

    # Control: the same bytes given to plain pickle do run their code (so the test can fail).
    try:
        loaded = pickle.loads(data)
    except Exception:  # noqa: BLE001 - the inner-payload case fails after running its code
        loaded = None
    if isinstance(loaded, dict) and hasattr(loaded["G_ema"], "close"):
        loaded["G_ema"].close()  # the file object builtins.open returned
    assert marker.exists()


def test_hostile_global_inside_a_genuine_snapshot_is_refused(writer, tiny_pickle, tmp_path) -> None:
    # The refusal must hold after the allowed globals have been used, deep in the stream.
    marker = tmp_path / "marker"
    snapshot = writer.load_fixture(tiny_pickle)
    snapshot["G_ema"].child("synthesis.b16.conv1").state["training"] = _Call(
        builtins.exec, f"__import__('pathlib').Path({str(marker)!r}).touch()"
    )
    path = writer.write(snapshot, "trojan.pkl")
    with pytest.raises(CheckpointError, match=r"refused pickle global builtins\.exec.*not executed"):
        read_nvidia_pickle(path)
    assert not marker.exists()


def test_module_source_stored_in_the_pickle_is_never_executed(writer, tiny_pickle, tmp_path, baseline) -> None:
    # NVIDIA's loader exec()s meta['module_src']; here it would create the marker file.
    marker = tmp_path / "marker"
    source = f"__import__('pathlib').Path({str(marker)!r}).touch()\n"
    snapshot = writer.load_fixture(tiny_pickle)
    for record in _records(snapshot):
        record.meta["module_src"] = source
    path = writer.write(snapshot, "module_src.pkl")

    result = read_nvidia_pickle(path)
    assert not marker.exists()
    _assert_same_generator(result, baseline)
    exec(compile(source, "control", "exec"))  # control: the stored source does create the file
    assert marker.exists()


def test_bare_imitation_of_a_persistent_object_is_not_executed(writer, tmp_path) -> None:
    marker = tmp_path / "marker"
    meta = {
        "type": "class",
        "version": 6,
        "class_name": "Generator",
        "state": {},
        "module_src": f"__import__('pathlib').Path({str(marker)!r}).touch()\n",
    }
    path = writer.write({"G_ema": _Record(meta)}, "imitation.pkl")
    with pytest.raises(CheckpointError, match="constructor arguments"):
        read_nvidia_pickle(path)
    assert not marker.exists()


def test_persistent_ids_are_refused(tmp_path) -> None:
    class WithIds(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            return "storage-0" if isinstance(obj, torch.Tensor) else None

    buffer = io.BytesIO()
    WithIds(buffer, protocol=4).dump({"G_ema": torch.zeros(3)})
    path = tmp_path / "ids.pkl"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointError, match="persistent ids"):
        read_nvidia_pickle(path)


# --------------------------------------------------------------------------------------------
# Broken files and unsupported generators
# --------------------------------------------------------------------------------------------


def test_truncated_file_is_reported_as_truncated_or_corrupt(tiny_pickle, tmp_path) -> None:
    data = tiny_pickle.read_bytes()
    path = tmp_path / "half.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as refused:
        read_nvidia_pickle(path)
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("prefix", [b"", b"\x80\x04"], ids=["random", "protocol-header-then-random"])
def test_random_bytes_are_refused(tmp_path, prefix) -> None:
    noise = torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(7), dtype=torch.uint8)
    path = tmp_path / "noise.pkl"
    path.write_bytes(prefix + bytes(noise.tolist()))
    with pytest.raises(CheckpointError) as refused:
        read_nvidia_pickle(path)
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)


def test_zip_archive_is_pointed_to_the_torch_loader(tmp_path) -> None:
    path = tmp_path / "model.pkl"
    torch.save({"g_ema": {}}, path)
    with pytest.raises(CheckpointError, match="zip archive"):
        read_nvidia_pickle(path)


def _patch_kwargs(**changes: Any) -> Callable[[dict], None]:
    def patch(snapshot: dict) -> None:
        kwargs = snapshot["G_ema"].state["_init_kwargs"]
        for key, value in changes.items():
            section, _, name = key.rpartition("__")
            (kwargs[section] if section else kwargs)[name] = value

    return patch


def _set_filter(snapshot: dict) -> None:
    taps = torch.tensor([1.0, 1.0, 1.0, 1.0])
    snapshot["G_ema"].child("synthesis.b8.conv0").state["_buffers"]["resample_filter"] = torch.outer(taps, taps) / 16


def _share_module(snapshot: dict) -> None:
    # Real networks are trees; a shared module could make the walk exponentially long.
    generator = snapshot["G_ema"]
    generator.child("mapping").state["_modules"]["again"] = generator.child("synthesis")


def _swap_in_g(snapshot: dict) -> None:
    del snapshot["G_ema"]


def _drop_tensor(snapshot: dict) -> None:
    del snapshot["G_ema"].child("synthesis.b16.conv1").state["_parameters"]["weight"]


@pytest.mark.parametrize(
    "patch, expected",
    [
        (_patch_kwargs(c_dim=10), "conditional generators are not supported"),
        (_patch_kwargs(synthesis_kwargs__architecture="resnet"), "architecture='resnet' is not supported"),
        (_patch_kwargs(img_channels=1), "only RGB generators"),
        (_patch_kwargs(z_dim=32), "z_dim=32 differs from w_dim=64"),
        (_patch_kwargs(synthesis_kwargs__activation="relu"), "activation='relu' is not supported"),
        (_patch_kwargs(mapping_kwargs__activation="linear"), "mapping activation='linear'"),
        (_patch_kwargs(synthesis_kwargs__use_noise=False), "use_noise=False"),
        (_patch_kwargs(synthesis_kwargs__resample_filter=[1, 2, 1]), "resample_filter=[1, 2, 1]"),
        (_patch_kwargs(synthesis_kwargs__magnitude_ema_beta=0.9), "does not know: ['magnitude_ema_beta']"),
        (_patch_kwargs(synthesis_kwargs__conv_clamp=None), "disagrees with its layers"),
        (_patch_kwargs(synthesis_kwargs__channel_max=16), "has shape"),
        (_set_filter, "synthesis.b8.conv0.resample_filter is not the [1, 3, 3, 1] filter"),
        (_drop_tensor, "missing ['synthesis.b16.conv1.weight']"),
        (_share_module, "modules do not form a tree"),
        (_swap_in_g, "has no 'G_ema' network"),
    ],
    ids=[
        "conditional",
        "resnet",
        "grayscale",
        "z_dim",
        "activation",
        "mapping-activation",
        "no-noise",
        "filter-kwarg",
        "unknown-kwarg",
        "clamp-mismatch",
        "channels",
        "filter-values",
        "missing-tensor",
        "shared-module",
        "no-G_ema",
    ],
)
def test_unsupported_or_inconsistent_generators_are_refused(writer, tiny_pickle, patch, expected) -> None:
    snapshot = writer.load_fixture(tiny_pickle)
    patch(snapshot)
    path = writer.write(snapshot, "variant.pkl")
    with pytest.raises(CheckpointError) as refused:
        read_nvidia_pickle(path)
    message = str(refused.value)
    assert expected in message
    assert message.startswith(f"{path}: ") and "\n" not in message


@pytest.mark.parametrize(
    "data, expected",
    [
        ([1, 2, 3], "holds a list, not a dict of networks"),
        ({"G_ema": {"weight": 1}}, "'G_ema' is a dict, not a persistent network object"),
    ],
    ids=["list", "plain-dict-G_ema"],
)
def test_pickles_that_are_not_network_snapshots_are_refused(tmp_path, data, expected) -> None:
    path = tmp_path / "other.pkl"
    path.write_bytes(pickle.dumps(data, protocol=4))
    with pytest.raises(CheckpointError, match=expected.replace("[", r"\[").replace("(", r"\(")):
        read_nvidia_pickle(path)


def test_tensor_view_past_its_storage_is_refused(tmp_path) -> None:
    # torch's own rebuild would silently grow the 4-element storage with uninitialised memory.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # TypedStorage deprecation
        storage = torch.zeros(4).storage()
    oversized = _Call(torch._utils._rebuild_tensor_v2, storage, 0, (100,), (1,), False, collections.OrderedDict())
    path = tmp_path / "oversized.pkl"
    path.write_bytes(pickle.dumps({"G_ema": oversized}, protocol=4))
    with pytest.raises(CheckpointError, match="reaches past the end of its storage"):
        read_nvidia_pickle(path)


def _self_referencing_list() -> list:
    looped: list = [1, 3, 3, 1]
    looped.append(looped)
    return looped


def _shared_list_nested(depth: int) -> list:
    nested: list = [1]
    for _ in range(depth):
        nested = [nested, nested]  # 2^depth paths through depth + 1 objects
    return nested


@pytest.mark.parametrize(
    "key",
    [
        "synthesis_kwargs__resample_filter",
        "mapping_kwargs__embed_features",
        "synthesis_kwargs__fused_modconv_default",
        "synthesis_kwargs__num_fp16_res",
    ],
)
@pytest.mark.parametrize(
    "make", [_self_referencing_list, lambda: _shared_list_nested(40)], ids=["self-referencing", "shared-40-deep"]
)
def test_crafted_nesting_in_a_keyword_is_refused_in_one_line_without_hanging(writer, tiny_pickle, key, make) -> None:
    snapshot = writer.load_fixture(tiny_pickle)
    _patch_kwargs(**{key: make()})(snapshot)
    path = writer.write(snapshot, "nested.pkl")
    with pytest.raises(CheckpointError) as refused:
        read_nvidia_pickle(path)  # a hang here would never return; a RecursionError is not a CheckpointError
    message = str(refused.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and len(message) < 400


@pytest.mark.parametrize(
    "key, value",
    [
        ("mapping_kwargs__w_avg_beta", "fast"),
        ("synthesis_kwargs__channels_last", [True]),
        ("synthesis_kwargs__fp16_channels_last", 1.5),
        ("mapping_kwargs__embed_features", -3),
    ],
)
def test_every_accepted_keyword_is_type_checked(writer, tiny_pickle, key, value) -> None:
    snapshot = writer.load_fixture(tiny_pickle)
    _patch_kwargs(**{key: value})(snapshot)
    path = writer.write(snapshot, "typed.pkl")
    with pytest.raises(CheckpointError, match="is not a valid value"):
        read_nvidia_pickle(path)


def test_a_network_pickle_of_views_of_one_stored_value_is_refused_before_anything_is_copied(writer, param_manifest):
    # The FFHQ-1024 config's 30 M parameters as stride-0 views: a few KB that would become 120 MB.
    path = writer.write({"G_ema": _synthetic_generator(param_manifest["configs"]["ffhq1024_stylegan2_cfg"])}, "v.pkl")
    assert path.stat().st_size < 2**20
    with pytest.raises(CheckpointError, match=r"v\.pkl: refused: its tensors span far more bytes than the file stores"):
        read_nvidia_pickle(path)


def test_a_hash_bomb_in_a_network_pickle_or_in_one_of_its_tensor_payloads_is_refused(tmp_path):
    (tmp_path / "bomb.pkl").write_bytes(hash_bomb())
    with pytest.raises(CheckpointError, match=r"bomb\.pkl: refused: .*hash bomb"):
        read_nvidia_pickle(tmp_path / "bomb.pkl")
    # A tensor payload is a legacy torch.save stream that torch unpickles: bounded the same way.
    payload = hash_bomb()
    stream = b"\x80\x02}X\x05\x00\x00\x00G_emac" + b"torch.storage\n_load_from_bytes\n"  # {"G_ema": f(
    stream += b"B" + struct.pack("<I", len(payload)) + payload + b"\x85Rs."  # BINBYTES, TUPLE1, REDUCE, SETITEM
    (tmp_path / "payload.pkl").write_bytes(stream)
    with pytest.raises(CheckpointError, match=r"payload\.pkl: refused: .*hash bomb"):
        read_nvidia_pickle(tmp_path / "payload.pkl")
