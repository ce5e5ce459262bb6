"""Loading a file from a stranger is bounded in time and memory before any work starts.

Every loader (generator .pt and .pkl, inversion state, direction, training checkpoint) refuses, in
one line naming the file, a pickle whose objects expand through shared references (a hash bomb),
tensors that are views of one stored value, storages declared larger than the file, and anything
but a regular file, while real files load as before. (An in-flight batch checkpoint, the run's own
file, is set aside instead and its batch restarted: test_batch_checkpoint.py.)
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers.crafted import hash_bomb, memo_get, memo_put, torch_archive, view_bomb_generator
from helpers.probe import run_probe
from sphinx.editing.directions import load_direction
from sphinx.errors import CheckpointError, ConfigError
from sphinx.generators import load_generator
from sphinx.inversion.state import load_state
from sphinx.training.export import export_generator
from sphinx.utils import untrusted_files
from sphinx.utils.untrusted_files import LoadLimitExceeded, check_pickles, load_torch_file

ROOT = Path(__file__).resolve().parents[2]


def test_a_hash_bomb_is_a_few_hundred_bytes_that_python_would_hash_for_ever():
    bomb = hash_bomb()
    assert len(bomb) < 2_000
    with pytest.raises(LoadLimitExceeded, match="hash bomb"):
        check_pickles(io.BytesIO(bomb), stored_bytes=len(bomb))


def test_a_bomb_small_enough_to_hash_once_is_refused_when_hashed_many_times():
    # 2**22 parts hash in a fraction of a second, but tuples cache no hash: 40 dicts cost 40 hashes.
    once, many = hash_bomb(22, dicts=1), hash_bomb(22, dicts=40)
    check_pickles(io.BytesIO(once), stored_bytes=len(once))
    with pytest.raises(LoadLimitExceeded, match="hashing its dict keys"):
        check_pickles(io.BytesIO(many), stored_bytes=len(many))


def test_reference_cycles_and_deep_nesting_are_refused():
    cycle = b"\x80\x02]" + memo_put(0) + memo_get(0) + b"a."  # a list appended to itself
    with pytest.raises(LoadLimitExceeded, match="cycle"):
        check_pickles(io.BytesIO(cycle), stored_bytes=len(cycle))
    deep = b"\x80\x02" + b"]" * 1000 + b"a" * 999 + b"."
    with pytest.raises(LoadLimitExceeded, match="nests objects more than 500 deep"):
        check_pickles(io.BytesIO(deep), stored_bytes=len(deep))


def test_plain_data_passes_and_the_stream_is_read_exactly_to_its_end():
    data = {"g_ema": {f"w{i}": (i, [1.0, "x"], {"k": None}) for i in range(2000)}, "shared": ((1, 2),) * 50}
    stream = io.BytesIO(pickle.dumps(data, protocol=2) + pickle.dumps([1, 2], protocol=4) + b"tail")
    check_pickles(stream, stored_bytes=10**6, count=2)
    assert stream.read() == b"tail"


def _bomb_everywhere(folder: Path) -> dict[str, tuple[Path, object]]:
    """The same bomb as each kind of file sphinx loads, with the call that loads it."""
    bomb = hash_bomb()
    (folder / "bomb.pkl").write_bytes(bomb)
    files = {name: torch_archive(bomb, folder / name) for name in ("g.pt", "state.pt", "d.pt", "last.pt")}
    generator = _tiny_generator()
    return {
        "generator .pkl": (folder / "bomb.pkl", lambda: load_generator(folder / "bomb.pkl")),
        "generator .pt": (files["g.pt"], lambda: load_generator(files["g.pt"])),
        "inversion state": (files["state.pt"], lambda: load_state(files["state.pt"])),
        "direction": (files["d.pt"], lambda: load_direction(files["d.pt"], generator)),
        "training checkpoint": (files["last.pt"], lambda: export_generator(files["last.pt"], folder / "out.pt")),
    }


def _tiny_generator():
    return load_generator(ROOT / "tests" / "data" / "fixtures" / "rosinality" / "tiny_g32.pt")


@pytest.mark.parametrize(
    "kind", ["generator .pkl", "generator .pt", "inversion state", "direction", "training checkpoint"]
)  # an in-flight batch checkpoint is set aside instead (test_batch_checkpoint.py)
def test_every_loader_refuses_a_hash_bomb_at_once_in_one_line(tmp_path, kind):
    path, load = _bomb_everywhere(tmp_path)[kind]
    started = time.perf_counter()
    with pytest.raises((CheckpointError, ConfigError)) as refused:
        load()
    assert time.perf_counter() - started < 10.0  # a hang check (unguarded, it never ends), not a speed measure
    message = str(refused.value)
    assert str(path) in message and "hash bomb" in message and "\n" not in message


def test_tensors_that_are_views_of_one_stored_value_are_refused_before_they_are_copied(tmp_path):
    path = view_bomb_generator(tmp_path / "views.pt", channels=4096)  # 4096**2 * 9 floats per conv: 600 MB each
    assert path.stat().st_size < 64_000
    with pytest.raises(CheckpointError, match=r"views\.pt: refused: .*views of shared values"):
        load_generator(path)


def test_the_view_refusal_keeps_the_peak_memory_of_the_process_small(tmp_path):
    path = view_bomb_generator(tmp_path / "views.pt", channels=8192)  # 2.4 GB per conv once copied
    report = run_probe(
        f"""
        import json, sys
        from sphinx.errors import CheckpointError
        from sphinx.generators import load_generator
        try:
            load_generator({str(path)!r})
            outcome = "loaded"
        except CheckpointError as error:
            outcome = str(error)
        print(json.dumps({{"outcome": outcome, "peak_mb": peak_mb()}}))
        """,
        cwd=ROOT,
    )
    assert "views of shared values" in report["outcome"]
    assert report["peak_mb"] < 1024, report


def test_a_legacy_stream_declaring_more_storage_than_the_file_holds_is_refused_before_allocating(tmp_path):
    buffer = io.BytesIO()
    torch.save(torch.zeros(12345), buffer, _use_new_zipfile_serialization=False)
    honest = buffer.getvalue()
    check_pickles(io.BytesIO(honest), stored_bytes=len(honest), count=untrusted_files.LEGACY_TORCH_PICKLES)
    count = b"M" + struct.pack("<H", 12345)  # the storage's element count, a BININT2
    assert honest.count(count) == 2  # in the storage's id, then in the tensor's size
    inflated = honest.replace(count, b"\x8a\x06" + (2**40).to_bytes(6, "little"), 1)  # LONG1: 4 TiB of floats
    path = tmp_path / "legacy.pt"
    path.write_bytes(inflated)
    with pytest.raises(CheckpointError, match=r"legacy\.pt: refused: it declares \d+ bytes of tensor storage"):
        load_state(path)


def test_only_regular_files_are_opened_so_a_fifo_cannot_block_the_run(tmp_path):
    fifo = tmp_path / "generator.pt"
    os.mkfifo(fifo)
    probe = f"from sphinx.generators import load_generator; load_generator({str(fifo)!r})"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode != 0
    assert f"{fifo}: not a regular file" in done.stderr


def test_real_checkpoints_still_load_and_a_state_still_round_trips(fixtures_root, tmp_path):
    assert load_generator(fixtures_root / "rosinality" / "tiny_g64.pt").resolution == 64
    assert load_generator(fixtures_root / "ada" / "tiny_ada32.pkl").resolution == 32
    torch.save({"a": torch.arange(6.0).reshape(2, 3), "b": [torch.ones(2)] * 3}, tmp_path / "plain.pt")
    loaded = load_torch_file(tmp_path / "plain.pt", what="test file", remedy="none")
    assert torch.equal(loaded["a"], torch.arange(6.0).reshape(2, 3)) and len(loaded["b"]) == 3


def test_a_direction_npy_declaring_gigabytes_over_a_sparse_file_is_refused_before_it_is_copied(tmp_path):
    import numpy as np

    path = tmp_path / "d.npy"
    np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(2**28,))  # 2 GiB declared, sparse
    assert path.stat().st_blocks * 512 < 2**20
    report = run_probe(
        f"""
        import json
        from sphinx.editing.directions import load_direction
        from sphinx.errors import ConfigError
        from sphinx.generators import load_generator
        generator = load_generator({str(ROOT / "tests/data/fixtures/rosinality/tiny_g32.pt")!r})
        try:
            load_direction({str(path)!r}, generator)
            outcome = "loaded"
        except ConfigError as error:
            outcome = str(error)
        print(json.dumps({{"outcome": outcome, "peak_mb": peak_mb()}}))
        """,
        cwd=ROOT,
    )
    assert "a direction must have shape" in report["outcome"] and "[268435456]" in report["outcome"]
    assert report["peak_mb"] < 1024, report  # a copy would take 2 GiB
