"""Crafted hostile files, written opcode by opcode (a real writer could not make them: building the
objects would itself take for ever)."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

# Python hashes a tuple by hashing its items; shared, each level doubles the work: 2**100 visits.
BOMB_LEVELS = 100


def memo_put(index: int) -> bytes:
    return b"r" + struct.pack("<I", index)  # LONG_BINPUT


def memo_get(index: int) -> bytes:
    return b"j" + struct.pack("<I", index)  # LONG_BINGET


def hash_bomb(levels: int = BOMB_LEVELS, *, dicts: int = 1) -> bytes:
    """A pickle of ``{t: 1}`` where ``t = (t', t')`` nested ``levels`` deep through the memo.

    With ``dicts > 1``, that many such dicts are built and all but the last dropped (POP: Python's
    unpickler, which reads network pickles, has it; torch's weights-only one does not).
    """
    out = bytearray(b"\x80\x02}")  # PROTO 2, EMPTY_DICT (the result)
    out += b")" + memo_put(0)  # EMPTY_TUPLE
    for level in range(1, levels + 1):
        out += memo_get(level - 1) + b"\x86" + memo_put(level)  # TUPLE2 of the level below with itself
    for _ in range(dicts - 1):
        out += b"}" + memo_get(levels) + b"K\x01s0"  # EMPTY_DICT, the bomb, 1, SETITEM, POP
    return bytes(out + b"K\x01s.")  # the bomb -> 1, into the result


def torch_archive(pickle_bytes: bytes, path: Path, *, records: dict[str, bytes] | None = None) -> Path:
    """A torch.save-layout zip (stored records) whose data.pkl is ``pickle_bytes``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", pickle_bytes)
        for name, data in (records or {}).items():
            archive.writestr(f"archive/data/{name}", data)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
    return path


def view_bomb_generator(path: Path, *, channels: int) -> Path:
    """A port-format checkpoint whose every weight is a stride-0 view of one stored zero (its FIR
    kernels real, so that nothing but the size gives it away)."""
    import torch

    from sphinx.generators.ops import fir_kernel
    from sphinx.generators.stylegan2 import Generator

    with torch.device("meta"):
        reference = Generator(resolution=8, style_dim=64, n_mlp=2, channels={4: channels, 8: channels})
    kernel, zero = fir_kernel(reference.blur_taps, gain=4), torch.zeros(())
    tensors = {
        key: kernel.clone() if key.endswith(".kernel") else zero.expand(value.shape)
        for key, value in reference.state_dict().items()
    }
    torch.save({"g_ema": tensors}, path)
    return path
