"""Spec of sphinx.utils.files: one atomic write for the whole project, readable by colleagues."""

from __future__ import annotations

import errno
import os
import stat

import numpy as np
import pytest
import torch

from helpers import disk_full_past
from sphinx.errors import OutputError
from sphinx.inversion.state import InversionState, save_state
from sphinx.rundir.writer import OutputWriter
from sphinx.utils.files import atomic_open, atomic_write_bytes, atomic_write_text, remove_temporaries


@pytest.fixture
def umask_002():
    previous = os.umask(0o002)
    yield
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_get_0666_minus_the_umask_like_any_other_tool(tmp_path, umask_002):
    atomic_write_text(tmp_path / "a.txt", "hello")
    assert mode(tmp_path / "a.txt") == 0o664
    os.umask(0o022)
    atomic_write_bytes(tmp_path / "b.bin", b"x")
    assert mode(tmp_path / "b.bin") == 0o644


def test_run_outputs_and_states_are_readable_by_the_group(tmp_path, umask_002):
    writer = OutputWriter(tmp_path, method="w", degradation="none", generator="g")
    writer.write_png("img", "target", np.zeros((4, 4, 3), dtype=np.uint8))
    writer.write_record("img", 0, {"status": "ok"})
    state = InversionState("w", "img", 0, {}, "g", {"w": torch.zeros(3)})
    save_state(state, tmp_path / "images" / "img" / "state.pt")
    for name in ("target.png", "record.json", "state.pt"):
        assert mode(tmp_path / "images" / "img" / name) == 0o664, name


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as stream:
            stream.write(b"half")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, monkeypatch):
    def full(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError) as refused:
        atomic_write_text(tmp_path / "results.csv", "a,b\n")
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'results.csv'}: cannot write (No space left on device)")
    assert "\n" not in message and os.listdir(tmp_path) == []


def test_a_full_disk_under_torch_save_is_one_line_naming_the_file(tmp_path):
    """torch.save swallows the failed write and raises a RuntimeError about a zip position."""
    state = InversionState("w", "img", 0, {}, "g", {"w": torch.zeros(100_000)})
    with disk_full_past(50_000), pytest.raises(OutputError) as refused:
        save_state(state, tmp_path / "state.pt")
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'state.pt'}: cannot write (File too large); free disk space")
    assert "\n" not in message and os.listdir(tmp_path) == []


def test_an_unwritable_folder_is_one_line_naming_the_file(tmp_path):
    (tmp_path / "images").write_text("a file where a folder should be")
    with pytest.raises(OutputError, match="images/x/record.json: cannot write"):
        atomic_write_text(tmp_path / "images" / "x" / "record.json", "{}")


def test_remove_temporaries_clears_only_leftovers_of_killed_writes(tmp_path):
    (tmp_path / "images" / "a").mkdir(parents=True)
    leftovers = [
        tmp_path / ".results.csv.1a2b3c.part",
        tmp_path / "images" / "a" / ".state.pt.x9.part",
        tmp_path / "images" / "a" / ".target.png.123.abcd.tmp",
    ]
    kept = [tmp_path / "results.csv", tmp_path / "images" / "a" / "state.pt", tmp_path / ".hydra.part.keep"]
    for path in leftovers + kept:
        path.write_text("x")
    assert remove_temporaries(tmp_path) == 3
    assert not any(p.exists() for p in leftovers) and all(p.exists() for p in kept)
