"""The red-team table of issue 22: hostile files and options through the real entry points.

Every case crafts its input under a temporary folder, then runs ``python -m sphinx.run`` (or
``sphinx.edit``, ``sphinx.train``) on it in a fresh process, with a wall-clock limit (a process
still running at the limit is killed and counted as a hang). For each it records the exit
status, the seconds, the child's peak resident memory (``os.wait4``'s ``ru_maxrss``), whether a
Python traceback appeared, how many lines the user got besides the progress and INFO logging,
and, for code-execution payloads, whether the payload ran (each payload creates a sentinel file).
Kill trials stop a small run with SIGKILL, SIGTERM or SIGINT at a random moment, resume it with
the same command, and compare its ``results.csv`` with an uninterrupted run's.

Nothing here decides an outcome in advance: each row is what the process did.

    python experiments/red_team/run.py            # everything; writes experiments/red_team/results.md
    python experiments/red_team/run.py --quick    # a subset of each category
    python experiments/red_team/run.py --only payloads --keep   # one category, keep the temp folder
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import hashlib
import io
import os
import random
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from helpers.crafted import hash_bomb, memo_get, memo_put, torch_archive, view_bomb_generator  # noqa: E402

RESULTS = Path(__file__).resolve().with_name("results.md")
PYTHON = sys.executable

CATEGORIES = ("payloads", "bombs", "bad_inputs", "kill")
TITLES = {
    "payloads": "Code execution payloads",
    "bombs": "Resource bombs",
    "bad_inputs": "Bad inputs and options",
    "kill": "Kill trials",
}
# A crafted file must be refused (or its image failed) within this; a run that inverts gets more.
CRAFTED_TIMEOUT = 60.0
INVERTING_TIMEOUT = 120.0
PEAK_LIMIT_MB = 1024.0
# Address-space cap of every child: a bomb that gets through fails there instead of taking the
# shared machine down (a normal run maps about 1.3 GB). Its peak still shows in the table.
DEFAULT_MEMORY_CAP_GB = 8.0

REFUSED = "exit 2, one line"  # the input is refused: status 2, one line, no traceback
HANDLED = "status 0, or exit 2 in one line"  # the run goes on, or a one-line refusal; no traceback

# What the common options of each entry point are; a case adds or replaces keys.
RUN_COMMON = {
    "generator": "demo",
    "method": "wplus",
    "method.steps": "2",
    "data.limit": "1",
    "batch_size": "1",
    "logger": "none",
}
TRAIN_COMMON = {
    "model": "tiny16",
    "data": "folder",
    "gan.steps": "1",
    "gan.batch_size": "2",
    "gan.num_samples": "4",
    "gan.latent_avg_samples": "16",
    "threads": "1",
    "trainer.enable_progress_bar": "false",
}

# -------------------------------------------------------------------------------------------
# Pickles, written opcode by opcode
# -------------------------------------------------------------------------------------------

PROTO2, PROTO4 = b"\x80\x02", b"\x80\x04"
MARK, STOP, REDUCE, BUILD, TUPLE = b"(", b".", b"R", b"b", b"t"
TUPLE1, TUPLE2 = b"\x85", b"\x86"
EMPTY_TUPLE, EMPTY_DICT, EMPTY_LIST = b")", b"}", b"]"
NONE, FALSE = b"N", b"\x89"
SETITEM, SETITEMS, LIST = b"s", b"u", b"l"
NEWOBJ, NEWOBJ_EX, STACK_GLOBAL, OBJ = b"\x81", b"\x92", b"\x93", b"o"
BINPERSID = b"Q"


def text(value: str) -> bytes:
    """BINUNICODE."""
    data = value.encode("utf-8", "surrogateescape")
    return b"X" + struct.pack("<I", len(data)) + data


def short_text(value: str) -> bytes:
    """SHORT_BINUNICODE (protocol 4)."""
    data = value.encode()
    return b"\x8c" + bytes([len(data)]) + data


def raw_bytes(value: bytes) -> bytes:
    """BINBYTES."""
    return b"B" + struct.pack("<I", len(value)) + value


def integer(value: int) -> bytes:
    """BININT for 32-bit values, LONG1 beyond."""
    if -(2**31) <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data


def global_(module: str, name: str) -> bytes:
    """GLOBAL."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def seq(*parts: bytes) -> bytes:
    return b"".join(parts)


def call(module: str, name: str, *arguments: bytes) -> bytes:
    """GLOBAL module.name, the arguments as a tuple, REDUCE (no PROTO, no STOP)."""
    return seq(global_(module, name), MARK, *arguments, TUPLE, REDUCE)


def pickle_of(*parts: bytes, protocol: bytes = PROTO2) -> bytes:
    return seq(protocol, *parts, STOP)


def rebuilt_tensor(storage: bytes, size: tuple[int, ...], stride: tuple[int, ...]) -> bytes:
    """``torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())``."""
    shape = seq(MARK, *(integer(extent) for extent in size), TUPLE)
    steps = seq(MARK, *(integer(step) for step in stride), TUPLE)
    rest = seq(FALSE, call("collections", "OrderedDict"))
    return call("torch._utils", "_rebuild_tensor_v2", storage, integer(0), shape, steps, rest)


def tensor_pickle_body(numel: int, *, key: str = "0") -> bytes:
    """The data.pkl of one float tensor in a torch.save archive, over the persistent storage ``key``."""
    storage_id = seq(MARK, text("storage"), global_("torch", "FloatStorage"), text(key), text("cpu"), integer(numel))
    return rebuilt_tensor(seq(storage_id, TUPLE, BINPERSID), (numel,), (1,))


def legacy_header() -> bytes:
    """The three leading pickles of a legacy (pre-zip) torch.save stream: magic number, protocol, sys info."""
    sys_info = EMPTY_DICT + MARK
    sys_info += text("protocol_version") + integer(1001) + text("little_endian") + b"\x88"
    sys_info += text("type_sizes") + EMPTY_DICT + MARK
    sys_info += text("short") + integer(2) + text("int") + integer(4) + text("long") + integer(4) + SETITEMS
    sys_info += SETITEMS
    return pickle_of(integer(0x1950A86A20F9469CFC6C)) + pickle_of(integer(1001)) + pickle_of(sys_info)


def legacy_stream(object_pickle: bytes) -> bytes:
    """A whole legacy torch.save stream (five pickles) whose object pickle is ``object_pickle``, no storages."""
    return legacy_header() + object_pickle + pickle_of(EMPTY_LIST)


def payloads(sentinel: Path) -> dict[str, bytes]:
    """Pickles that create ``sentinel`` when Python's own unpickler reads them, one per technique."""
    shell = f"touch {sentinel}"
    code = f"open({str(sentinel)!r}, 'w').close()"
    system = call("os", "system", text(shell))
    first_stage = pickle_of(system)
    partial = global_("functools", "partial")
    module_src = f"import os\nos.system({shell!r})\nclass Generator:\n    pass\n"
    record = seq(EMPTY_DICT, MARK, text("type"), text("class"), text("version"), integer(4))
    record += seq(text("module_src"), text(module_src), text("class_name"), text("Generator"))
    record += seq(text("state"), EMPTY_DICT, SETITEMS)
    return {
        "REDUCE os.system (GLOBAL)": first_stage,
        "REDUCE posix.system (GLOBAL)": pickle_of(call("posix", "system", text(shell))),
        "REDUCE builtins.exec (STACK_GLOBAL)": pickle_of(
            short_text("builtins"), short_text("exec"), STACK_GLOBAL, text(code), TUPLE1, REDUCE, protocol=PROTO4
        ),
        "REDUCE builtins.eval": pickle_of(call("builtins", "eval", text(code))),
        "REDUCE subprocess.Popen": pickle_of(
            call("subprocess", "Popen", MARK, text("touch"), text(str(sentinel)), LIST)
        ),
        "INST os.system": pickle_of(MARK, text(shell), b"ios\nsystem\n"),
        "OBJ os.system": pickle_of(MARK, global_("os", "system"), text(shell), OBJ),
        "NEWOBJ functools.partial(os.system), called": pickle_of(
            partial, global_("os", "system"), text(shell), TUPLE2, NEWOBJ, EMPTY_TUPLE, REDUCE
        ),
        "NEWOBJ_EX functools.partial(exec), called": pickle_of(
            partial, global_("builtins", "exec"), TUPLE1, EMPTY_DICT, NEWOBJ_EX, text(code), TUPLE1, REDUCE
        ),
        # BUILD sets a plain object's attributes from (None, slots); the second BUILD then calls the
        # planted __setstate__ with its state
        "BUILD planting __setstate__ = os.system": pickle_of(
            call("types", "SimpleNamespace"),
            NONE,
            EMPTY_DICT,
            text("__setstate__"),
            global_("os", "system"),
            SETITEM,
            TUPLE2,
            BUILD,
            text(shell),
            BUILD,
        ),  # fmt: skip
        "EXT1 code 240 (os.system where copyreg registers it)": pickle_of(b"\x82\xf0", text(shell), TUPLE1, REDUCE),
        "EXT2 code 0xBEEF (posix.system where registered)": pickle_of(
            b"\x83", struct.pack("<H", 0xBEEF), text(shell), TUPLE1, REDUCE
        ),
        "persistent id built by os.system": pickle_of(system, TUPLE1, BINPERSID),
        "getattr(__import__('os'), 'system')": pickle_of(
            call("builtins", "getattr", call("builtins", "__import__", text("os")), text("system")),
            text(shell),
            TUPLE1,
            REDUCE,
        ),  # fmt: skip
        "pickle.loads of a nested payload": pickle_of(call("_pickle", "loads", raw_bytes(first_stage))),
        "_load_from_bytes: legacy stream, payload first": pickle_of(
            nvidia_tensor(call("torch.storage", "_load_from_bytes", raw_bytes(first_stage)))
        ),
        "_load_from_bytes: legacy stream, payload as its object": pickle_of(
            nvidia_tensor(call("torch.storage", "_load_from_bytes", raw_bytes(legacy_stream(first_stage))))
        ),
        "torch.load(weights_only=False) of a nested stream": pickle_of(
            partial,
            global_("torch", "load"),
            TUPLE1,
            EMPTY_DICT,
            short_text("weights_only"),
            FALSE,
            SETITEM,
            NEWOBJ_EX,
            call("io", "BytesIO", raw_bytes(legacy_stream(first_stage))),
            TUPLE1,
            REDUCE,
            protocol=PROTO4,
        ),  # fmt: skip
        "persistence record with hostile module_src": pickle_of(
            EMPTY_DICT, text("G_ema"), call("torch_utils.persistence", "_reconstruct_persistent_obj", record), SETITEM
        ),
    }


def nvidia_tensor(storage: bytes) -> bytes:
    """``{"G_ema": <a one-element tensor over storage>}``, as a storage expression sits in a network pickle."""
    return seq(EMPTY_DICT, text("G_ema"), rebuilt_tensor(storage, (1,), (1,)), SETITEM)


def zip_bomb(path: Path, *, gib: float) -> Path:
    """A torch archive whose storage record is ``gib`` GiB of zeros, deflated to a few MB."""
    numel = int(gib * 2**30) // 4
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", pickle_of(tensor_pickle_body(numel)))
        info = zipfile.ZipInfo("archive/data/0")
        info.compress_type = zipfile.ZIP_DEFLATED
        chunk = bytes(2**24)
        with archive.open(info, "w", force_zip64=True) as record:
            for _ in range(numel * 4 // len(chunk)):
                record.write(chunk)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
    return path


def numpy_object_file(path: Path, pickled: bytes) -> Path:
    """A ``.npy`` of one object: numpy stores it as a pickle, which ``np.load(allow_pickle=True)`` runs."""
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + pickled)
    return path


def sparse_numpy_file(path: Path, *, gib: float) -> Path:
    """A ``.npy`` float64 vector of ``gib`` GiB whose data is a hole in the file (no disk used)."""
    count = int(gib * 2**30) // 8
    header = f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({count},), }}".encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    with open(path, "wb") as stream:
        stream.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header)
        stream.truncate(stream.tell() + count * 8)
    return path


def write_png(path: Path, width: int, height: int, *, pixel: bytes = b"\x80\x40\xc0") -> Path:
    """A constant PNG written row by row (a huge one costs the writer no memory)."""
    color_type = {1: 0, 3: 2, 4: 6}[len(pixel)]

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    compressor, row, pending = zlib.compressobj(6), b"\x00" + pixel * width, bytearray()
    with open(path, "wb") as stream:
        stream.write(
            b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0))
        )
        for _ in range(height):
            pending += compressor.compress(row)
            if len(pending) > 2**20:
                stream.write(chunk(b"IDAT", bytes(pending)))
                pending.clear()
        pending += compressor.flush()
        stream.write(chunk(b"IDAT", bytes(pending)) + chunk(b"IEND", b""))
    return path


def small_png(path: Path, *, size: int = 64, seed: int = 0) -> Path:
    """A real little photo-like PNG (noise), for folders that need one good image."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def legacy_bytes(value) -> bytes:
    """``torch.save`` in the legacy (non-zip) format."""
    import torch

    buffer = io.BytesIO()
    torch.save(value, buffer, _use_new_zipfile_serialization=False)
    return buffer.getvalue()


def legacy_declaring_4_tib() -> bytes:
    """A legacy stream of 12345 floats whose storage id declares 2**40 of them (4 TiB)."""
    import torch

    honest = legacy_bytes(torch.zeros(12345))
    count = b"M" + struct.pack("<H", 12345)  # BININT2 of the element count: storage id, then size
    return honest.replace(count, b"\x8a\x06" + (2**40).to_bytes(6, "little"), 1)


def view_bomb_pickle(*, tensors: int, channels: int) -> bytes:
    """An NVIDIA-style pickle of ``tensors`` [channels, channels, 3, 3] stride-0 views of one stored float."""
    storage = seq(call("torch.storage", "_load_from_bytes", raw_bytes(legacy_one_float_storage())), memo_put(1))
    views = [
        seq(
            text(f"w{index}"),
            rebuilt_tensor(storage if index == 0 else memo_get(1), (channels, channels, 3, 3), (0,) * 4),
        )
        for index in range(tensors)
    ]
    return pickle_of(EMPTY_DICT, text("G_ema"), EMPTY_DICT, MARK, *views, SETITEMS, SETITEM)


def legacy_one_float_storage() -> bytes:
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage is deprecated, and still what NVIDIA's files hold
        return legacy_bytes(torch.zeros(1).storage())


# -------------------------------------------------------------------------------------------
# Running a case
# -------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Launch:
    """What a case runs: an entry point, its options, and what to look at afterwards."""

    entry: str  # run | edit | train
    options: dict[str, str]  # the case's own options (shown in the table)
    common: dict[str, str] = dataclasses.field(default_factory=dict)  # shared options (not shown)
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    sentinel: Path | None = None
    drop_root: bool = False  # run without root's permission override (a read-only folder stays read-only)


@dataclasses.dataclass
class Outcome:
    rc: int | None
    seconds: float
    peak_mb: float
    hang: bool
    traceback: bool
    lines: list[str]
    payload_ran: bool | None = None
    note: str = ""


@dataclasses.dataclass
class Case:
    category: str
    name: str
    build: Callable[[Workspace, Path], Launch]
    expect: str = REFUSED
    quick: bool = False
    timeout: float = CRAFTED_TIMEOUT
    crafted: bool = True  # a crafted file: counts toward hangs and peak memory


@dataclasses.dataclass
class Row:
    case: Case
    what: str
    outcome: Outcome
    failures: list[str]


_INFO_LOG = re.compile(r"^\[\d{4}-\d\d-\d\d [\d:,.]+\]\[[^\]]*\]\[(DEBUG|INFO)\] - ")
_OFFLINE_LPIPS = re.compile(r"\]\[WARNING\] - LPIPS off \(MSE-only loss")
_PROGRESS = re.compile(r"^(steps|images|frames|attributes|batches): \d+(/\d+)? ")
_SUMMARY = re.compile(r"^(results: |.+: \d+ ok( \(\d+ flagged\))?, \d+ failed; )")


def counted_lines(output: str) -> list[str]:
    """The lines a user reads as messages: all but INFO logging, progress, the summary and blank lines.

    The warning that LPIPS runs without its ImageNet backbone is left out too: it comes from this
    offline machine, not from the input.
    """
    kept = []
    for line in output.replace("\r\n", "\n").split("\n"):
        if not line.strip() or _INFO_LOG.match(line) or _OFFLINE_LPIPS.search(line):
            continue
        if _PROGRESS.match(line) or _SUMMARY.match(line):
            continue
        kept.append(line.rstrip())
    return kept


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPHINX_", "HYDRA_", "WANDB_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        SPHINX_OFFLINE="1",  # nothing waits on a network
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class Child:
    """One entry-point process: output to a file, its own session, a memory cap, reaped with its rusage."""

    def __init__(self, argv: list[str], *, env: dict[str, str], log: Path, memory_cap: int) -> None:
        def limits() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_cap, memory_cap))

        self.log = log
        self.started = time.monotonic()
        with open(log, "wb") as stream:
            self.process = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stream,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=limits,
            )
        self.status: int | None = None
        self.peak_mb = 0.0
        self.ended: float | None = None

    def poll(self) -> bool:
        if self.status is None:
            pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
            if pid:
                self._reaped(status, usage)
        return self.status is not None

    def wait(self, timeout: float) -> bool:
        """Wait until the process ends or ``timeout`` seconds pass; True when it ended."""
        deadline = time.monotonic() + timeout
        while not self.poll():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def signal(self, number: int) -> None:
        try:
            os.kill(self.process.pid, number)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the whole session (the entry point and anything it started) and reap it."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.status is None:
            _, status, usage = os.wait4(self.process.pid, 0)
            self._reaped(status, usage)

    def output(self) -> str:
        return self.log.read_bytes().decode("utf-8", "replace")

    def _reaped(self, status: int, usage) -> None:
        self.ended = time.monotonic()
        self.status = os.waitstatus_to_exitcode(status)
        self.process.returncode = self.status  # reaped here: Popen must not wait for it again
        self.peak_mb = usage.ru_maxrss / 1024  # KiB on Linux
        # Whatever the entry point left running in its session (a payload's `touch`) gets a second
        # to finish, then is killed.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.05)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    @property
    def seconds(self) -> float:
        return (self.ended if self.ended is not None else time.monotonic()) - self.started


def argv_of(launch: Launch, *, run_dir: Path) -> list[str]:
    options = {**launch.common, **launch.options, "hydra.run.dir": str(run_dir)}
    argv = [PYTHON, "-m", f"sphinx.{launch.entry}", *(f"{key}={value}" for key, value in options.items())]
    setpriv = shutil.which("setpriv")
    if launch.drop_root and os.geteuid() == 0 and setpriv:
        argv = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--", *argv]
    return argv


def run_launch(
    launch: Launch, *, folder: Path, timeout: float, memory_cap: int, run_dir: Path | None = None
) -> Outcome:
    child = Child(
        argv_of(launch, run_dir=run_dir or folder / "run"),
        env=child_env(launch.env),
        log=folder / "output.log",
        memory_cap=memory_cap,
    )
    hang = not child.wait(timeout)
    if hang:
        child.kill()
    output = child.output()
    return Outcome(
        rc=None if hang else child.status,
        seconds=child.seconds,
        peak_mb=child.peak_mb,
        hang=hang,
        traceback="Traceback (most recent call last)" in output,
        lines=counted_lines(output),
        payload_ran=launch.sentinel.exists() if launch.sentinel is not None else None,
    )


class Workspace:
    """The temporary folder, and the run dirs that several cases start from (made once, when first needed)."""

    def __init__(self, root: Path, *, memory_cap: int, quick: bool) -> None:
        self.root, self.memory_cap, self.quick = root, memory_cap, quick
        self._templates: dict[str, Path] = {}

    def shown(self, value: str) -> str:
        return value.replace(str(self.root), "$TMP")

    def folder_of_images(self, name: str, count: int = 1, *, size: int = 64) -> Path:
        folder = self.root / "shared" / name
        if not folder.is_dir():
            folder.mkdir(parents=True)
            for index in range(count):
                small_png(folder / f"img{index}.png", size=size, seed=index)
        return folder

    def template(self, name: str, launch: Launch) -> Path:
        """A finished run dir of ``launch``, made once; raises when the run does not succeed."""
        if name not in self._templates:
            folder = self.root / "templates" / name
            folder.mkdir(parents=True)
            outcome = run_launch(launch, folder=folder, timeout=600, memory_cap=self.memory_cap)
            if outcome.rc != 0:
                tail = " | ".join((folder / "output.log").read_text(errors="replace").splitlines()[-3:])
                raise RuntimeError(f"template run {name} failed (status {outcome.rc}): {tail}")
            self._templates[name] = folder / "run"
        return self._templates[name]

    def copy_of(self, name: str, launch: Launch, destination: Path) -> Path:
        shutil.copytree(self.template(name, launch), destination)
        return destination


def evaluate(case: Case, outcome: Outcome) -> list[str]:
    """The criteria this outcome misses (empty: the row passes)."""
    failures = []
    if outcome.payload_ran:
        failures.append("payload ran")
    if outcome.hang:
        failures.append(f"hang (killed after {case.timeout:.0f} s)")
        return failures
    if case.crafted and outcome.peak_mb >= PEAK_LIMIT_MB:
        failures.append(f"peak {outcome.peak_mb:.0f} MB")
    if outcome.traceback:
        failures.append("traceback")
    one_line = outcome.rc == 2 and len(outcome.lines) == 1
    if case.expect == REFUSED and not one_line:
        failures.append(f"status {outcome.rc}, {len(outcome.lines)} lines (expected status 2, one line)")
    elif case.expect == HANDLED and not (outcome.rc == 0 or one_line):
        failures.append(f"status {outcome.rc}, {len(outcome.lines)} lines (expected status 0, or 2 in one line)")
    return failures


def run_case(case: Case, workspace: Workspace, index: int) -> Row:
    folder = workspace.root / case.category / f"{index:02d}"
    folder.mkdir(parents=True)
    what = f"({case.name})"
    try:
        launch = case.build(workspace, folder)
        shown = " ".join(f"{k}={v}" for k, v in launch.options.items())
        env = " ".join(f"{k}={v}" for k, v in launch.env.items())
        what = workspace.shown(f"{env + ' ' if env else ''}sphinx.{launch.entry} {shown}".strip())
        outcome = run_launch(launch, folder=folder, timeout=case.timeout, memory_cap=workspace.memory_cap)
    except Exception as error:  # noqa: BLE001 - one broken case must not stop the others
        outcome = Outcome(None, 0.0, 0.0, False, False, [], note=f"harness error: {error!r}")
        print(traceback.format_exc(), file=sys.stderr)
        return Row(case, what, outcome, [f"the harness could not run it: {error!r}"[:200]])
    return Row(case, what, outcome, evaluate(case, outcome))


# -------------------------------------------------------------------------------------------
# The cases
# -------------------------------------------------------------------------------------------


def run_options(**options: str) -> Launch:
    return Launch("run", dict(options), common=dict(RUN_COMMON))


def generator_file(path: Path) -> Launch:
    return run_options(**{"generator": "custom", "generator.source": str(path)})


def edit_launch(options: dict[str, str], *, images: int = 1) -> Launch:
    common = {**RUN_COMMON, "data.limit": str(images), "batch_size": str(images)}
    return Launch("edit", options, common=common)


def morph_launch(**options: str) -> Launch:
    return edit_launch({"edit": "morph", **options}, images=2)


def direction_launch(source: Path) -> Launch:
    return edit_launch({"edit": "direction", "edit.source": str(source)})


def train_launch(workspace: Workspace, **options: str) -> Launch:
    common = {**TRAIN_COMMON, "data.path": str(workspace.folder_of_images("train", 4, size=16))}
    return Launch("train", dict(options), common=common)


def states_folder(folder: Path, contents: bytes, *, ids=("astronaut", "chelsea")) -> Path:
    """A folder shaped like a run dir whose images/<id>/state.pt are ``contents``."""
    for image_id in ids:
        (folder / "states" / "images" / image_id).mkdir(parents=True)
        (folder / "states" / "images" / image_id / "state.pt").write_bytes(contents)
    return folder / "states"


def inflight_file(run_dir: Path, ids: list[str]) -> Path:
    """Where sphinx.run keeps the in-flight checkpoint of the batch of ``ids`` (``OutputWriter.inflight_path``)."""
    digest = hashlib.sha1("\n".join(ids).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    (run_dir / "inflight").mkdir(parents=True, exist_ok=True)
    return run_dir / "inflight" / f"{digest}.pt"


def run_template() -> Launch:
    """The finished sphinx.run dir that the resume cases tamper with (two images)."""
    return run_options(**{"data.limit": "2"})


def payload_cases() -> list[Case]:
    cases: list[Case] = []

    def add(
        name: str,
        build: Callable[[Workspace, Path], Launch],
        *,
        quick: bool = False,
        timeout=CRAFTED_TIMEOUT,
        expect: str = REFUSED,
    ):
        cases.append(Case("payloads", name, build, quick=quick, timeout=timeout, expect=expect))

    def with_payload(technique: str, deliver: Callable[[Workspace, Path, bytes], Launch]):
        def build(workspace: Workspace, folder: Path) -> Launch:
            sentinel = folder / "SENTINEL"
            launch = deliver(workspace, folder, payloads(sentinel)[technique])
            launch.sentinel = sentinel
            return launch

        return build

    def as_pkl(workspace, folder, data):
        (folder / "g.pkl").write_bytes(data)
        return generator_file(folder / "g.pkl")

    def as_pt(workspace, folder, data):
        return generator_file(torch_archive(data, folder / "g.pt"))

    def as_legacy_pt(workspace, folder, data):
        (folder / "g.pt").write_bytes(data)
        return generator_file(folder / "g.pt")

    def as_states_from(workspace, folder, data):
        archive = torch_archive(data, folder / "payload.pt").read_bytes()
        return morph_launch(**{"edit.states_from": str(states_folder(folder, archive))})

    def as_legacy_states_from(workspace, folder, data):
        return morph_launch(**{"edit.states_from": str(states_folder(folder, legacy_stream(data)))})

    def as_resumed_state(workspace, folder, data):
        run_dir = workspace.copy_of("morph", morph_launch(), folder / "run")
        torch_archive(data, run_dir / "images" / "astronaut" / "state.pt")
        return morph_launch()

    def as_inflight(workspace, folder, data):
        torch_archive(data, inflight_file(folder / "run", ["astronaut"]))
        return run_options()

    def as_direction(workspace, folder, data):
        return direction_launch(torch_archive(data, folder / "d.pt"))

    def as_direction_npy(workspace, folder, data):
        return direction_launch(numpy_object_file(folder / "d.npy", data))

    def as_train_resume(workspace, folder, data):
        return train_launch(workspace, resume=str(torch_archive(data, folder / "last.pt")))

    def as_legacy_train_resume(workspace, folder, data):
        (folder / "last.pt").write_bytes(legacy_stream(data))
        return train_launch(workspace, resume=str(folder / "last.pt"))

    def as_lpips_backbone(workspace, folder, data):
        launch = run_options()
        launch.env["SPHINX_LPIPS_BACKBONE"] = str(torch_archive(data, folder / "vgg16-397923af.pth"))
        return launch

    techniques = list(payloads(Path("x")))
    quick_pkl = {
        "REDUCE os.system (GLOBAL)",
        "BUILD planting __setstate__ = os.system",
        "persistence record with hostile module_src",
    }
    for technique in techniques:
        add(f"generator .pkl: {technique}", with_payload(technique, as_pkl), quick=technique in quick_pkl)
    for technique in (
        "REDUCE os.system (GLOBAL)",
        "REDUCE builtins.exec (STACK_GLOBAL)",
        "NEWOBJ functools.partial(os.system), called",
        "BUILD planting __setstate__ = os.system",
        "_load_from_bytes: legacy stream, payload first",
    ):
        add(
            f"generator .pt (zip): {technique}", with_payload(technique, as_pt), quick=technique.startswith("REDUCE os")
        )
    add("generator legacy .pt: payload as its first pickle", with_payload("REDUCE os.system (GLOBAL)", as_legacy_pt))
    add(
        "generator legacy .pt: payload after a real header",
        lambda ws, folder: _prefixed(with_payload("INST os.system", as_legacy_pt), ws, folder),
        quick=True,
    )
    add("state.pt via edit.states_from (zip)", with_payload("OBJ os.system", as_states_from), quick=True)
    add("state.pt via edit.states_from (legacy)", with_payload("REDUCE posix.system (GLOBAL)", as_legacy_states_from))
    add(
        "state.pt of a finished edit, read on resume",
        with_payload("REDUCE builtins.eval", as_resumed_state),
        timeout=INVERTING_TIMEOUT,
        quick=True,
    )
    # the run's own in-flight file, refused: set aside (one warning line) and its batch restarted
    add(
        "in-flight checkpoint on resume: GLOBAL",
        with_payload("REDUCE os.system (GLOBAL)", as_inflight),
        quick=True,
        expect=HANDLED,
    )
    add(
        "in-flight checkpoint on resume: NEWOBJ_EX",
        with_payload("NEWOBJ_EX functools.partial(exec), called", as_inflight),
        expect=HANDLED,
    )
    add("direction .pt", with_payload("REDUCE subprocess.Popen", as_direction), quick=True)
    add("direction .npy of a pickled object", with_payload("REDUCE os.system (GLOBAL)", as_direction_npy), quick=True)
    add("sphinx.train resume= (zip)", with_payload("getattr(__import__('os'), 'system')", as_train_resume), quick=True)
    add("sphinx.train resume= (legacy)", with_payload("REDUCE os.system (GLOBAL)", as_legacy_train_resume))
    add(
        "LPIPS backbone via SPHINX_LPIPS_BACKBONE",
        with_payload("pickle.loads of a nested payload", as_lpips_backbone),
        quick=True,
    )
    return cases


def _prefixed(build: Callable[[Workspace, Path], Launch], workspace: Workspace, folder: Path) -> Launch:
    """A legacy file whose payload follows a real magic number, protocol and sys-info header."""
    launch = build(workspace, folder)
    path = Path(launch.options["generator.source"])
    path.write_bytes(legacy_stream(path.read_bytes()))
    return launch


def bomb_cases() -> list[Case]:
    cases: list[Case] = []

    def add(name: str, build, *, quick: bool = False, expect: str = REFUSED, timeout=CRAFTED_TIMEOUT):
        cases.append(Case("bombs", name, build, quick=quick, expect=expect, timeout=timeout))

    bomb = hash_bomb()

    def pkl(folder: Path, data: bytes) -> Launch:
        (folder / "g.pkl").write_bytes(data)
        return generator_file(folder / "g.pkl")

    add("hash bomb: generator .pkl", lambda ws, folder: pkl(folder, bomb), quick=True)
    add("hash bomb: generator .pt", lambda ws, folder: generator_file(torch_archive(bomb, folder / "g.pt")), quick=True)
    add(
        "hash bomb: state.pt via edit.states_from",
        lambda ws, folder: morph_launch(
            **{"edit.states_from": str(states_folder(folder, torch_archive(bomb, folder / "b.pt").read_bytes()))}
        ),
    )

    def inflight_bomb(ws: Workspace, folder: Path) -> Launch:
        torch_archive(bomb, inflight_file(folder / "run", ["astronaut"]))
        return run_options()

    add("hash bomb: in-flight checkpoint on resume", inflight_bomb, quick=True, expect=HANDLED)
    add("hash bomb: direction .pt", lambda ws, folder: direction_launch(torch_archive(bomb, folder / "d.pt")))
    add(
        "hash bomb: sphinx.train resume=",
        lambda ws, folder: train_launch(ws, resume=str(torch_archive(bomb, folder / "last.pt"))),
    )

    def lpips_bomb(ws: Workspace, folder: Path) -> Launch:
        launch = run_options()
        launch.env["SPHINX_LPIPS_BACKBONE"] = str(torch_archive(bomb, folder / "vgg16-397923af.pth"))
        return launch

    add("hash bomb: LPIPS backbone", lpips_bomb)
    add("small bomb hashed 40 times (.pkl)", lambda ws, folder: pkl(folder, hash_bomb(22, dicts=40)), quick=True)
    add(
        "reference cycle (.pt)",
        lambda ws, folder: generator_file(
            torch_archive(pickle_of(EMPTY_LIST, memo_put(0), memo_get(0), b"a"), folder / "g.pt")
        ),
    )
    add(
        "nesting a million deep (.pkl)",
        lambda ws, folder: pkl(folder, pickle_of(EMPTY_LIST * 1_000_000, b"a" * 999_999)),
    )
    add(
        "views of one stored value: generator .pt",
        lambda ws, folder: generator_file(view_bomb_generator(folder / "g.pt", channels=8192)),
        quick=True,
    )
    add(
        "views of one stored value: generator .pkl",
        lambda ws, folder: pkl(folder, view_bomb_pickle(tensors=20, channels=8192)),
        quick=True,
    )
    add(
        "storage declared beyond the archive (.pt)",
        lambda ws, folder: generator_file(
            torch_archive(pickle_of(tensor_pickle_body(2**36)), folder / "g.pt", records={"0": bytes(16)})
        ),
        quick=True,
    )

    def legacy_4_tib_state(ws: Workspace, folder: Path) -> Launch:
        return morph_launch(**{"edit.states_from": str(states_folder(folder, legacy_declaring_4_tib()))})

    def legacy_4_tib_generator(ws: Workspace, folder: Path) -> Launch:
        (folder / "g.pt").write_bytes(legacy_declaring_4_tib())
        return generator_file(folder / "g.pt")

    add("legacy stream declaring 4 TiB: state.pt", legacy_4_tib_state, quick=True)
    add("legacy stream declaring 4 TiB: generator .pt", legacy_4_tib_generator)

    def zip_bomb_generator(ws: Workspace, folder: Path) -> Launch:
        return generator_file(zip_bomb(folder / "g.pt", gib=0.25 if ws.quick else 1.5))

    add("zip bomb (a deflated record of 1.5 GiB, 0.25 with --quick): generator .pt", zip_bomb_generator, quick=True)

    def sparse_direction(ws: Workspace, folder: Path) -> Launch:
        return direction_launch(sparse_numpy_file(folder / "d.npy", gib=2.0))

    add("direction .npy declaring 2 GiB over a sparse file", sparse_direction, quick=True)

    def data_folder(folder: Path, make: Callable[[Path], object]) -> Launch:
        data = folder / "data"
        data.mkdir()
        small_png(data / "good.png")
        make(data)
        return run_options(**{"data": "folder", "data.path": str(data), "data.limit": "null"})

    add(
        "12000x12000 PNG in the data folder",
        lambda ws, folder: data_folder(folder, lambda d: write_png(d / "huge.png", 12000, 12000)),
        expect=HANDLED,
        quick=True,
        timeout=INVERTING_TIMEOUT,
    )
    add(
        "42 MP RGBA PNG in the data folder",
        lambda ws, folder: data_folder(
            folder, lambda d: write_png(d / "rgba.png", 7500, 5600, pixel=b"\x80\x40\xc0\xff")
        ),
        expect=HANDLED,
        quick=True,
        timeout=INVERTING_TIMEOUT,
    )
    add(
        "FIFO named x.png in the data folder",
        lambda ws, folder: data_folder(folder, lambda d: os.mkfifo(d / "x.png")),
        expect=HANDLED,
        quick=True,
        timeout=INVERTING_TIMEOUT,
    )

    def fifo_generator(ws: Workspace, folder: Path) -> Launch:
        os.mkfifo(folder / "g.pt")
        return generator_file(folder / "g.pt")

    add("FIFO as generator.source", fifo_generator, quick=True)
    return cases


def bad_input_cases() -> list[Case]:
    cases: list[Case] = []

    def add(name: str, build, *, quick: bool = False, expect: str = REFUSED, timeout=CRAFTED_TIMEOUT):
        cases.append(Case("bad_inputs", name, build, quick=quick, expect=expect, timeout=timeout, crafted=False))

    def run_with(**options: str):
        return lambda ws, folder: run_options(**options)

    def edit_with(**options: str):
        return lambda ws, folder: edit_launch(options)

    def train_with(**options: str):
        return lambda ws, folder: train_launch(ws, **options)

    # sphinx.run options
    add("run: seed=abc", run_with(seed="abc"), quick=True)
    add("run: batch_size=abc", run_with(batch_size="abc"), quick=True)
    add("run: batch_size=0", run_with(batch_size="0"))
    add("run: steps_scale=abc", run_with(steps_scale="abc"))
    add("run: checkpoint_every=-5", run_with(checkpoint_every="-5"))
    add("run: trainer=gpu on a machine without CUDA", run_with(trainer="gpu"), quick=True)
    add("run: method.lr=inf", run_with(**{"method.lr": "inf"}), quick=True)
    add("run: method.lr=nan", run_with(**{"method.lr": "nan"}))
    add("run: method.steps=-1", run_with(**{"method.steps": "-1"}), quick=True)
    add("run: method.steps=abc", run_with(**{"method.steps": "abc"}))
    add("run: +method.no_such_option=1", run_with(**{"+method.no_such_option": "1"}), quick=True)
    add("run: method=no_such_method", run_with(method="no_such_method"), quick=True)
    add("run: degradation=no_such", run_with(degradation="no_such"))
    add("run: data.limit=-1", run_with(**{"data.limit": "-1"}))
    add("run: execution.precision=fp8", run_with(**{"execution.precision": "fp8"}))
    add("run: lpips.net=no_such", run_with(**{"lpips.net": "no_such"}))
    add("run: data=folder without data.path", run_with(data="folder"))
    add("run: missing data folder", run_with(**{"data": "folder", "data.path": "/nonexistent/images"}), quick=True)

    def empty_data_folder(ws: Workspace, folder: Path) -> Launch:
        (folder / "empty").mkdir()
        return run_options(**{"data": "folder", "data.path": str(folder / "empty")})

    add("run: empty data folder", empty_data_folder)
    add("run: generator=custom without generator.source", run_with(generator="custom"))
    add(
        "run: missing generator file",
        run_with(**{"generator": "custom", "generator.source": "/nonexistent/g.pt"}),
        quick=True,
    )

    def text_generator(ws: Workspace, folder: Path) -> Launch:
        (folder / "g.pt").write_text("not a checkpoint\n")
        return generator_file(folder / "g.pt")

    add("run: a text file as generator .pt", text_generator)

    def read_only_run_dir(ws: Workspace, folder: Path) -> Launch:
        (folder / "run").mkdir()
        (folder / "run").chmod(0o555)
        launch = run_options()
        launch.drop_root = True
        return launch

    add("run: read-only run dir", read_only_run_dir, quick=True)

    def run_dir_is_a_file(ws: Workspace, folder: Path) -> Launch:
        (folder / "run").write_text("a file\n")
        return run_options()

    add("run: hydra.run.dir is a file", run_dir_is_a_file, quick=True)

    # a finished run dir, tampered with, then resumed with the same command
    def tampered(change: Callable[[Path], object]):
        def build(ws: Workspace, folder: Path) -> Launch:
            launch = run_template()
            change(ws.copy_of("run", launch, folder / "run"))
            return launch

        return build

    deep = "[" * 100_000 + "]" * 100_000
    add(
        "resume: corrupt record.json (not JSON)",
        tampered(lambda run: (run / "images" / "astronaut" / "record.json").write_text("{not json")),
        expect=HANDLED,
        timeout=INVERTING_TIMEOUT,
        quick=True,
    )
    add(
        "resume: record.json of the wrong shape ([])",
        tampered(lambda run: (run / "images" / "astronaut" / "record.json").write_text("[]")),
        expect=HANDLED,
        timeout=INVERTING_TIMEOUT,
    )
    add(
        "resume: record.json without its keys ({})",
        tampered(lambda run: (run / "images" / "astronaut" / "record.json").write_text("{}")),
        expect=HANDLED,
        timeout=INVERTING_TIMEOUT,
    )
    add(
        "resume: record.json nested 100000 deep",
        tampered(lambda run: (run / "images" / "astronaut" / "record.json").write_text(deep)),
        expect=HANDLED,
        timeout=INVERTING_TIMEOUT,
        quick=True,
    )
    add(
        "resume: corrupt results.csv",
        tampered(lambda run: (run / "results.csv").write_bytes(b'image,"unclosed\n\xff\xfe\x00')),
        expect=HANDLED,
        timeout=INVERTING_TIMEOUT,
    )
    add(
        "resume: corrupt run.json",
        tampered(lambda run: (run / "run.json").write_text("{not json")),
        timeout=INVERTING_TIMEOUT,
        quick=True,
    )
    add(
        "resume: run.json nested 100000 deep",
        tampered(lambda run: (run / "run.json").write_text(deep)),
        timeout=INVERTING_TIMEOUT,
        quick=True,
    )

    # image names a file system allows
    def odd_name(name: bytes):
        def build(ws: Workspace, folder: Path) -> Launch:
            data = folder / "data"
            data.mkdir()
            small_png(data / "good.png")
            small_png(Path(os.fsdecode(bytes(data) + b"/" + name)), seed=1)
            return run_options(**{"data": "folder", "data.path": str(data), "data.limit": "null"})

        return build

    add(
        "run: image name with non-UTF-8 bytes",
        odd_name(b"bad\xff\xfe.png"),
        expect=HANDLED,
        timeout=INVERTING_TIMEOUT,
        quick=True,
    )
    add(
        "run: image name with a newline",
        odd_name(b"new\nline.png"),
        expect=HANDLED,
        timeout=INVERTING_TIMEOUT,
        quick=True,
    )
    add(
        "run: image name with a carriage return",
        odd_name(b"carriage\rreturn.png"),
        expect=HANDLED,
        timeout=INVERTING_TIMEOUT,
    )

    # sphinx.edit
    add("edit: edit.frame_ms=1", edit_with(**{"edit.frame_ms": "1"}))
    add("edit: edit.tolerance=abc", edit_with(**{"edit.tolerance": "abc"}))
    add("edit: edit.kind=no_such", edit_with(**{"edit.kind": "no_such"}), quick=True)
    add("edit: edit=morph with one image", edit_with(edit="morph"))
    add(
        "edit: missing edit.states_from",
        edit_with(**{"edit": "morph", "edit.states_from": "/nonexistent/run"}),
        quick=True,
    )
    add("edit: missing direction file", edit_with(**{"edit": "direction", "edit.source": "/nonexistent/d.npy"}))
    add("edit: edit.strengths=[]", edit_with(**{"edit": "direction", "edit.strengths": "[]"}))
    add("edit: method=pti (no W+ input)", edit_with(method="pti"), quick=True)
    add("edit: seed=abc", edit_with(seed="abc"))

    def odd_name_edit(ws: Workspace, folder: Path) -> Launch:
        data = folder / "data"
        data.mkdir()
        small_png(data / "good.png")
        small_png(Path(os.fsdecode(bytes(data) + b"/bad\xff\nname.png")), seed=1)
        launch = edit_launch({"edit": "morph", "data": "folder", "data.path": str(data)}, images=2)
        return launch

    add(
        "edit: morph of images with non-UTF-8 / newline names",
        odd_name_edit,
        expect=HANDLED,
        timeout=INVERTING_TIMEOUT,
        quick=True,
    )

    # sphinx.train
    add("train: seed=abc", train_with(seed="abc"), quick=True)
    add("train: threads=abc", train_with(threads="abc"))
    add("train: gan.steps=-1", train_with(**{"gan.steps": "-1"}), quick=True)
    add("train: gan.lr=inf", train_with(**{"gan.lr": "inf"}), quick=True)
    add("train: gan.batch_size=0", train_with(**{"gan.batch_size": "0"}))
    add("train: missing data folder", train_with(**{"data.path": "/nonexistent/images"}), quick=True)
    add(
        "train: data=folder without data.path",
        lambda ws, folder: Launch("train", {}, common={k: v for k, v in TRAIN_COMMON.items()}),
    )
    add("train: missing resume= file", train_with(resume="/nonexistent/last.pt"), quick=True)
    add("train: trainer=gpu on a machine without CUDA", train_with(trainer="gpu"))
    add("train: model=no_such", train_with(model="no_such"))

    def odd_name_train(ws: Workspace, folder: Path) -> Launch:
        data = folder / "data"
        data.mkdir()
        for index, name in enumerate((b"good.png", b"bad\xff.png", b"new\nline.png", b"carriage\rreturn.png")):
            small_png(Path(os.fsdecode(bytes(data) + b"/" + name)), size=16, seed=index)
        return train_launch(ws, **{"data.path": str(data)})

    add(
        "train: images with non-UTF-8 / newline / CR names",
        odd_name_train,
        expect=HANDLED,
        timeout=INVERTING_TIMEOUT,
        quick=True,
    )
    return cases


def all_cases() -> list[Case]:
    return [*payload_cases(), *bomb_cases(), *bad_input_cases()]


# What NVIDIA's loader does with a persistent record, and copyreg entries for the EXT codes: with
# them, Python's own unpickler shows that every payload is live.
_LIVENESS = """
import copyreg, pickle, sys, time, types
from pathlib import Path

def _reconstruct_persistent_obj(meta):  # torch_utils.persistence exec()s the stored module source
    exec(meta["module_src"], {})

persistence = types.ModuleType("torch_utils.persistence")
persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
package = types.ModuleType("torch_utils")
package.persistence = persistence
sys.modules.update({"torch_utils": package, "torch_utils.persistence": persistence})
copyreg.add_extension("os", "system", 240)
copyreg.add_extension("posix", "system", 0xBEEF)
for path in sorted(Path(sys.argv[1]).glob("*.pkl")):
    try:
        pickle.loads(path.read_bytes())
    except Exception as error:
        print(path.stem, type(error).__name__, str(error)[:100], flush=True)
time.sleep(1)  # Popen's touch runs on its own
"""


def check_liveness(workspace: Workspace) -> dict[str, bool]:
    """Which payload techniques create their sentinel when Python's own unpickler reads them."""
    folder = workspace.root / "liveness"
    folder.mkdir(parents=True)
    names = list(payloads(folder / "x"))
    for index, name in enumerate(names):
        (folder / f"{index:02d}.pkl").write_bytes(payloads(folder / f"{index:02d}.ran")[name])
    subprocess.run(
        [PYTHON, "-c", _LIVENESS, str(folder)],
        cwd=folder,
        env=child_env({}),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=300,
    )
    return {name: (folder / f"{index:02d}.ran").exists() for index, name in enumerate(names)}


# -------------------------------------------------------------------------------------------
# Kill trials
# -------------------------------------------------------------------------------------------

_OPTIMIZING = re.compile(r"\]\[sphinx\]\[INFO\] - method ")
_IGNORED_COLUMNS = re.compile(r"second|time")


@dataclasses.dataclass
class KillTrial:
    signal_name: str
    delay: float  # seconds after the run started optimizing
    interrupted: bool  # False: the run finished before the signal was sent
    killed: Outcome | None  # the stopped run; its seconds are those from the signal to its end
    resumed: Outcome | None
    exact: bool
    detail: str

    @property
    def stop_as_documented(self) -> bool | None:
        """SIGTERM and SIGINT: status 143 / 130 within seconds, one line saying how to resume."""
        expected = {"SIGTERM": 143, "SIGINT": 130}.get(self.signal_name)
        if expected is None or self.killed is None or not self.interrupted:
            return None
        k = self.killed
        return k.rc == expected and not k.traceback and len(k.lines) == 1 and k.seconds < STOP_SECONDS


STOP_SECONDS = 30.0


def read_table(path: Path) -> list[dict[str, str]] | None:
    if not path.is_file():
        return None
    with open(path, newline="") as stream:
        return [{k: v for k, v in row.items() if not _IGNORED_COLUMNS.search(k)} for row in csv.DictReader(stream)]


def compare_tables(expected: list[dict] | None, got: list[dict] | None) -> tuple[bool, str]:
    if got is None:
        return False, "no results.csv"
    if expected == got:
        return True, f"results.csv: {len(got)} rows equal"
    if len(expected or []) != len(got):
        return False, f"results.csv: {len(got)} rows, expected {len(expected or [])}"
    cells = [
        f"{row.get('image')}.{key}: {row.get(key)} vs {theirs.get(key)}"
        for row, theirs in zip(got, expected)
        for key in sorted(set(row) | set(theirs))
        if row.get(key) != theirs.get(key)
    ]
    return False, f"results.csv: {len(cells)} cells differ ({'; '.join(cells[:3])})"


def kill_launch(steps: int) -> Launch:
    options = {"data.limit": "2", "batch_size": "1", "method.steps": str(steps), "checkpoint_every": "25", "seed": "0"}
    return run_options(**options)


def watch_until_optimizing(child: Child, *, limit: float) -> float | None:
    """When the run logged that it starts inverting (monotonic time), or None if it ended or ran past ``limit``."""
    while not child.wait(0.05):
        if _OPTIMIZING.search(child.output()):
            return time.monotonic()
        if child.seconds > limit:
            return None
    return time.monotonic() if _OPTIMIZING.search(child.output()) else None


def run_kill_trials(
    workspace: Workspace, *, signals: list[str], steps: int, rng: random.Random
) -> tuple[list[KillTrial], str]:
    """An uninterrupted run, then one interrupted and resumed run per signal; results.csv compared."""
    launch = kill_launch(steps)
    folder = workspace.root / "kill" / "baseline"
    folder.mkdir(parents=True)
    child = Child(
        argv_of(launch, run_dir=folder / "run"),
        env=child_env({}),
        log=folder / "output.log",
        memory_cap=workspace.memory_cap,
    )
    began = watch_until_optimizing(child, limit=900)
    if not child.wait(900):
        child.kill()
    if child.status != 0 or began is None:
        return [], f"the uninterrupted run failed (status {child.status})"
    optimizing = child.ended - began
    expected = read_table(folder / "run" / "results.csv")
    shown = " ".join(f"{k}={v}" for k, v in launch.options.items())
    what = (
        f"Each trial runs `sphinx.run {shown}`, sends the signal at a random moment of its optimization "
        f"(uniform between 1 s and 60% of the uninterrupted run's {optimizing:.0f} s), then reruns the same "
        "command into the same run dir and compares results.csv (all columns but seconds) with the "
        "uninterrupted run's. SIGTERM and SIGINT should stop the run within seconds with status 143 / 130 "
        "and one line saying how to resume."
    )
    trials = []
    for index, name in enumerate(signals):
        delay = rng.uniform(1.0, max(1.0, 0.6 * optimizing))
        try:
            trials.append(kill_trial(workspace, launch, index, name, delay, expected))
        except Exception as error:  # noqa: BLE001 - one broken trial must not stop the others
            print(traceback.format_exc(), file=sys.stderr)
            trials.append(KillTrial(name, delay, False, None, None, False, f"the harness failed: {error!r}"))
    return trials, what


def kill_trial(
    workspace: Workspace, launch: Launch, index: int, name: str, delay: float, expected: list[dict] | None
) -> KillTrial:
    folder = workspace.root / "kill" / f"trial{index}"
    folder.mkdir(parents=True)
    run_dir = folder / "run"
    child = Child(
        argv_of(launch, run_dir=run_dir), env=child_env({}), log=folder / "killed.log", memory_cap=workspace.memory_cap
    )
    began = watch_until_optimizing(child, limit=900)
    interrupted = began is not None and not child.wait(max(0.0, began + delay - time.monotonic()))
    signalled, printed_before = time.monotonic(), len(child.output())
    if interrupted:
        child.signal(getattr(signal, name))
    hang = not child.wait(60)
    if hang:
        child.kill()
    output = child.output()[printed_before:]  # what the run said after the signal
    killed = Outcome(
        rc=None if hang else child.status,
        seconds=(child.ended or signalled) - signalled,
        peak_mb=child.peak_mb,
        hang=hang,
        traceback="Traceback (most recent call last)" in output,
        lines=counted_lines(output),
    )
    resumed = run_launch(launch, folder=folder, timeout=900, memory_cap=workspace.memory_cap, run_dir=run_dir)
    exact, detail = compare_tables(expected, read_table(run_dir / "results.csv"))
    if not interrupted:
        detail = "the run ended before the signal (not a trial); " + detail
    return KillTrial(name, delay, interrupted, killed, resumed, exact and resumed.rc == 0, detail)


# -------------------------------------------------------------------------------------------
# The report
# -------------------------------------------------------------------------------------------


def cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")


def first_line(outcome: Outcome, workspace: Workspace, width: int = 110) -> str:
    """The line that says what happened: the exception's own line after a traceback, else the first
    ``error:`` line, else the first line."""
    if outcome.note:
        return outcome.note[:width]
    if not outcome.lines:
        return ""
    chosen = outcome.lines[0]
    if outcome.traceback:
        raised = [line for line in outcome.lines if _EXCEPTION_LINE.match(line)]
        chosen = raised[-1] if raised else chosen
    else:
        chosen = next((line for line in outcome.lines if line.startswith("error:")), chosen)
    return clipped(workspace.shown(chosen).strip(), width)


def extra_line(outcome: Outcome, workspace: Workspace, width: int = 110) -> str:
    """Without a traceback, the first line besides the one :func:`first_line` shows (console noise)."""
    if outcome.traceback or len(outcome.lines) < 2:
        return ""
    shown = first_line(outcome, workspace, width=10**6)
    others = [line for line in outcome.lines if workspace.shown(line).strip() != shown]
    return clipped(workspace.shown(others[0]).strip(), width) if others else ""


def clipped(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def case_table(rows: list[Row], workspace: Workspace) -> list[str]:
    lines = [
        "| case | what was run | status | s | peak MB | traceback | lines | payload ran | first line | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        o = row.outcome
        ran = "" if o.payload_ran is None else ("**yes**" if o.payload_ran else "no")
        status = "hang" if o.hang else o.rc
        verdict = "ok" if not row.failures else "**" + "; ".join(row.failures) + "**"
        lines.append(
            "| "
            + " | ".join(
                cell(v)
                for v in (
                    row.case.name,
                    f"`{row.what}`",
                    status,
                    f"{o.seconds:.1f}",
                    f"{o.peak_mb:.0f}",
                    "**yes**" if o.traceback else "no",
                    len(o.lines),
                    ran,
                    f"`{first_line(o, workspace)}`" if first_line(o, workspace) else "",
                    verdict,
                )
            )
            + " |"
        )
    return lines


def kill_table(trials: list[KillTrial], workspace: Workspace) -> list[str]:
    lines = [
        "| trial | signal | after s | stopped: status, s to stop, lines after the signal | stopped as documented | resumed: status, s "
        "| peak MB | exact | detail |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for index, trial in enumerate(trials):
        k, r = trial.killed, trial.resumed
        stopped = ""
        if k is not None and trial.interrupted:
            stopped = f"{'hang' if k.hang else k.rc}, {k.seconds:.1f}, {len(k.lines)}" + (
                ", traceback" if k.traceback else ""
            )
        documented = {None: "", True: "yes", False: "**no**"}[trial.stop_as_documented]
        resumed = "" if r is None else f"{'hang' if r.hang else r.rc}, {r.seconds:.0f}"
        peak = max((o.peak_mb for o in (k, r) if o is not None), default=0.0)
        exact = "yes" if trial.exact else "**no**"
        values = (index, trial.signal_name, f"{trial.delay:.1f}", stopped, documented, resumed, f"{peak:.0f}", exact)
        lines.append("| " + " | ".join(cell(v) for v in (*values, workspace.shown(trial.detail))) + " |")
    return lines


def summary_lines(rows: list[Row], trials: list[KillTrial] | None) -> list[str]:
    by = lambda category: [row for row in rows if row.case.category == category]
    parts = []
    payload_rows = by("payloads")
    if payload_rows:
        ran = sum(bool(row.outcome.payload_ran) for row in payload_rows)
        parts.append(f"payloads run: {ran} of {len(payload_rows)}")
    crafted = [row for row in rows if row.case.crafted]
    if crafted:
        hangs = sum(row.outcome.hang for row in crafted)
        worst = max(crafted, key=lambda row: row.outcome.peak_mb)
        parts.append(f"hangs: {hangs} of {len(crafted)} crafted files")
        parts.append(f"max peak over crafted files: {worst.outcome.peak_mb:.0f} MB ({worst.case.name})")
        one_line = sum(not row.failures for row in crafted)
        parts.append(f"crafted files answered as expected: {one_line} of {len(crafted)}")
    bad = by("bad_inputs")
    if bad:
        answered = sum(not row.failures for row in bad)
        parts.append(f"bad inputs answered in one line (or run on, where expected): {answered} of {len(bad)}")
    if trials is not None:
        real = [t for t in trials if t.interrupted]
        ended = f" ({len(trials) - len(real)} ended before their signal)" if len(real) < len(trials) else ""
        parts.append(f"kill trials exact: {sum(t.exact for t in real)} of {len(real)}{ended}")
        stops = [t.stop_as_documented for t in real if t.stop_as_documented is not None]
        if stops:
            parts.append(f"SIGTERM/SIGINT stopped as documented: {sum(stops)} of {len(stops)}")
    return ["**Summary:** " + "; ".join(parts) + "."] if parts else []


def git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "sphinx", "conf"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (with uncommitted changes under sphinx/ or conf/)" if dirty else "")


def report(
    rows: list[Row],
    trials: list[KillTrial] | None,
    kill_what: str,
    liveness: dict[str, bool],
    workspace: Workspace,
    *,
    command: str,
    categories: list[str],
    started: datetime.datetime,
    seconds: float,
) -> str:
    out = [
        "# Red-team table (issue 22)",
        "",
        f"Command: `{command}`  ",
        f"Date: {started.strftime('%Y-%m-%d %H:%M')} UTC, {seconds / 60:.1f} min; commit {git_commit()}  ",
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; each child: 1 thread, SPHINX_OFFLINE=1, "
        f"address space capped at {workspace.memory_cap / 2**30:.0f} GiB.",
        "",
        *summary_lines(rows, trials),
        "",
        "Columns: *status* is the exit status (hang: still running at the limit, "
        f"{CRAFTED_TIMEOUT:.0f} s, or {INVERTING_TIMEOUT:.0f} s for a case that inverts images; then killed); "
        "*peak MB* the child's peak resident memory; *lines* the lines printed besides INFO logging, "
        "progress and the final summary (and besides the offline machine's 'LPIPS off' warning); "
        f"a crafted file passes when no payload ran, it did not hang, its peak stayed under {PEAK_LIMIT_MB:.0f} MB, "
        "no traceback appeared and it was answered as the case expects: "
        f"'{REFUSED}' or, where a run should go on, '{HANDLED}'.",
    ]
    for category in categories:
        out += ["", f"## {TITLES[category]}", ""]
        if category == "kill":
            if trials is None:
                continue
            out.append(kill_what)
            out.append("")
            out += kill_table(trials, workspace)
            continue
        if category == "payloads" and liveness:
            dead = [name for name, live in liveness.items() if not live]
            out.append(
                "Every technique is first read by Python's own unpickler (`pickle.loads`, with copyreg entries "
                "for the EXT codes and a stand-in `torch_utils.persistence` that exec()s `module_src` as "
                f"NVIDIA's does): it creates its sentinel for {len(liveness) - len(dead)} of {len(liveness)} "
                "techniques, so each payload below is live" + (f" except {', '.join(dead)}." if dead else ".")
            )
            out.append("")
        chosen = [row for row in rows if row.case.category == category]
        expects = sorted({row.case.expect for row in chosen})
        out.append(f"Expected: {', '.join(expects)} (see each case).")
        out.append("")
        out += case_table(chosen, workspace)
    failing = [row for row in rows if row.failures]
    failing_trials = [t for t in (trials or []) if not t.exact or t.stop_as_documented is False]
    out += ["", "## Failing rows", ""]
    if not failing and not failing_trials:
        out.append("None.")
    for row in failing:
        said = first_line(row.outcome, workspace)
        extra = extra_line(row.outcome, workspace)
        extra = f" (also: `{extra}`)" if extra else ""
        out.append(f"- {row.case.category} / {row.case.name}: {'; '.join(row.failures)}: `{said}`{extra}")
    for trial in failing_trials:
        stop = "" if trial.stop_as_documented is not False else "not stopped as documented; "
        out.append(f"- kill / {trial.signal_name} after {trial.delay:.1f} s: {stop}{workspace.shown(trial.detail)}")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=CATEGORIES, action="append", help="run only this category (repeatable)")
    parser.add_argument("--quick", action="store_true", help="a subset of each category, and fewer kill trials")
    parser.add_argument("--match", default=None, help="run only the cases whose name contains this text")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"where to write the table (default {RESULTS.relative_to(ROOT)} for a run of every category)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the random kill moments")
    parser.add_argument(
        "--kill-steps", type=int, default=None, help="steps per image of the kill trials (200; 100 with --quick)"
    )
    parser.add_argument("--memory-cap-gb", type=float, default=DEFAULT_MEMORY_CAP_GB)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    args = parser.parse_args(argv)

    categories = [c for c in CATEGORIES if c in (args.only or CATEGORIES)]
    command = (
        "python experiments/red_team/run.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    )
    started, clock = datetime.datetime.now(datetime.timezone.utc), time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="sphinx-red-team-"))
    workspace = Workspace(root, memory_cap=int(args.memory_cap_gb * 2**30), quick=args.quick)
    rows: list[Row] = []
    trials: list[KillTrial] | None = None
    kill_what = ""
    liveness: dict[str, bool] = {}
    try:
        if "payloads" in categories and args.match is None:
            liveness = check_liveness(workspace)
            print(
                f"payload techniques live under pickle.loads: {sum(liveness.values())} of {len(liveness)}", flush=True
            )
        cases = [case for case in all_cases() if case.category in categories]
        cases = [
            case for case in cases if (case.quick or not args.quick) and (args.match is None or args.match in case.name)
        ]
        for index, case in enumerate(cases):
            row = run_case(case, workspace, index)
            rows.append(row)
            o = row.outcome
            status = "hang" if o.hang else o.rc
            verdict = "ok" if not row.failures else "FAIL: " + "; ".join(row.failures)
            print(
                f"[{index + 1}/{len(cases)}] {case.category} / {case.name}: status {status}, {o.seconds:.1f} s, {o.peak_mb:.0f} MB, {verdict}",
                flush=True,
            )
        if "kill" in categories and args.match is None:
            signals = ["SIGKILL", "SIGTERM"] if args.quick else ["SIGKILL", "SIGTERM", "SIGINT", "SIGKILL"]
            steps = args.kill_steps or (100 if args.quick else 200)
            trials, kill_what = run_kill_trials(workspace, signals=signals, steps=steps, rng=random.Random(args.seed))
            if not trials:
                print(f"kill trials: {kill_what}", flush=True)
                kill_what, trials = f"Not run: {kill_what}.", []
            for trial in trials:
                print(
                    f"kill trial {trial.signal_name} after {trial.delay:.1f} s: exact={trial.exact} ({trial.detail})",
                    flush=True,
                )
    finally:
        if args.keep:
            print(f"kept {root}", flush=True)
        else:
            for path in root.rglob("*"):  # read-only folders made by a case
                if path.is_dir() and not path.is_symlink():
                    path.chmod(0o755)
            shutil.rmtree(root, ignore_errors=True)
    text = report(
        rows,
        trials,
        kill_what,
        liveness,
        workspace,
        command=command,
        categories=categories,
        started=started,
        seconds=time.monotonic() - clock,
    )
    print()
    print(text)
    out = args.out if args.out is not None else (RESULTS if args.only is None and args.match is None else None)
    if out is not None:
        out.write_text(text)
        print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
