"""Reading files sphinx did not write itself, within limits checked before the work.

Every file sphinx loads (a generator, an inversion state, an in-flight batch checkpoint, a
direction, a training checkpoint) can come from anyone. ``torch.load(weights_only=True)`` and an
allowlist unpickler keep code from running, but not work from exploding: a few hundred bytes of
pickle can describe a tuple nested through shared references whose hash takes longer than the
universe has left (Python hashes tuples recursively and caches nothing), and a few kilobytes can
declare tensors that are views of one stored value, so that copying them out materialises
gigabytes. Both are refused here, before torch or Python does the work:

- the pickle's opcodes are replayed on a symbolic stack first, without building a single object,
  and refused when an object would expand past :data:`MAX_EXPANDED_OBJECTS` nodes, nest deeper
  than :data:`MAX_NESTING`, hold a reference cycle, cost more than :data:`MAX_HASH_WORK` node
  visits to hash as dict keys and set members, or declare more storage bytes than the file holds;
- after loading, the tensors together may not span more bytes than the file can hold
  (:data:`MAX_VIEW_RATIO` times its size, for tied weights, plus :data:`VIEW_SLACK_BYTES`);
- only regular files are opened (a FIFO named ``*.pt`` would block the reader forever).
"""

from __future__ import annotations

import os
import pickle
import pickletools
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import torch

from sphinx.errors import CheckpointError

# Real checkpoints expand to at most a few hundred thousand pickle objects (an NVIDIA FFHQ-1024
# snapshot: about 60 000) and nest about ten deep.
MAX_EXPANDED_OBJECTS = 20_000_000
MAX_NESTING = 500
MAX_HASH_WORK = 50_000_000
# Tied weights are two views of one storage; nothing real needs more than twice its stored bytes.
MAX_VIEW_RATIO = 2.0
VIEW_SLACK_BYTES = 2**20
# A legacy (pre-zip) torch.save stream is five pickles in a row, then the raw storages.
LEGACY_TORCH_PICKLES = 5
_ZIP_MAGIC = b"PK"
_STORAGE_ITEM_BYTES = {
    "DoubleStorage": 8,
    "FloatStorage": 4,
    "HalfStorage": 2,
    "BFloat16Storage": 2,
    "LongStorage": 8,
    "IntStorage": 4,
    "ShortStorage": 2,
    "CharStorage": 1,
    "ByteStorage": 1,
    "BoolStorage": 1,
    "ComplexFloatStorage": 8,
    "ComplexDoubleStorage": 16,
}
_UNKNOWN_ITEM_BYTES = 16  # the widest dtype: an unknown storage type is counted at its worst


def require_regular_file(path: str | os.PathLike, *, what: str) -> Path:
    """Refuse anything but a regular file (a FIFO, a device, a folder) before opening it.

    Args:
        path: the file to read.
        what: what the file should be, for the message (e.g. "generator checkpoint").

    Returns:
        ``path`` as a Path.

    Raises:
        CheckpointError: missing, or not a regular file.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such {what}; check the path") from None
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read this {what} ({error.strerror}); check the path") from None
    if not stat.S_ISREG(mode):
        raise CheckpointError(f"{path}: not a regular file (a folder, FIFO or device); point at the {what} file itself")
    return path


def load_torch_file(path: str | os.PathLike, *, what: str, remedy: str) -> Any:
    """``torch.load(weights_only=True)`` with the work bounded before it starts.

    Args:
        path: a file written by ``torch.save`` (zip archive or legacy stream).
        what: what the file should be, for messages (e.g. "inversion state").
        remedy: what the user should do when it is refused (e.g. "re-run the inversion").

    Returns:
        The loaded object, on the CPU.

    Raises:
        CheckpointError: not a regular file; unreadable, truncated or corrupt; holds anything but
            tensors and plain containers; or exceeds a limit of this module. One line naming the
            file and ``remedy``.
    """
    path = require_regular_file(path, what=what)
    size = path.stat().st_size
    try:
        check_torch_file(path)
    except LoadLimitExceeded as refused:
        raise CheckpointError(f"{path}: refused: {refused} (nothing was loaded from this {what}); {remedy}") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as broken:
        raise CheckpointError(f"{path}: truncated or corrupt {what} ({_one_line(broken)}); {remedy}") from None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as refused:
        reason = _one_line(refused)
        if "Weights only load failed" in str(refused) or "global" in str(refused).lower():
            raise CheckpointError(
                f"{path}: refused: this {what} holds objects other than tensors and plain containers "
                f"(it was not executed; {reason}); {remedy}"
            ) from None
        raise CheckpointError(f"{path}: truncated or corrupt {what} ({reason}); {remedy}") from None
    except Exception as broken:  # noqa: BLE001 - torch raises many types for damaged files
        raise CheckpointError(f"{path}: truncated or corrupt {what} ({_one_line(broken)}); {remedy}") from None
    try:
        check_tensor_bytes(payload, stored_bytes=size)
    except LoadLimitExceeded as refused:
        raise CheckpointError(f"{path}: refused: {refused} (this {what} was not used); {remedy}") from None
    return payload


def check_torch_file(path: Path) -> None:
    """Check a ``torch.save`` file's pickles and archive records against this module's limits.

    Raises:
        LoadLimitExceeded: a limit is exceeded (the message says which).
        ValueError, OSError, zipfile.BadZipFile: the file is truncated or corrupt.
    """
    size = path.stat().st_size
    with open(path, "rb") as stream:
        head = stream.read(2)
    if head == _ZIP_MAGIC:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
            compressed = [r.filename for r in records if r.compress_type != zipfile.ZIP_STORED]
            if compressed:
                raise LoadLimitExceeded(
                    f"it holds compressed records ({compressed[0][:60]!r}), which torch.save never writes"
                )
            if sum(r.file_size for r in records) > size:
                raise LoadLimitExceeded("its records declare more bytes than the file holds")
            pickles = [r for r in records if r.filename.endswith(".pkl")]
            if not pickles:
                raise ValueError("no data.pkl record")
            for record in pickles:
                with archive.open(record) as stream:
                    check_pickles(stream, stored_bytes=size)
        return
    if not head.startswith(b"\x80"):
        raise ValueError("neither a torch.save archive nor a legacy torch stream")
    with open(path, "rb") as stream:
        check_pickles(stream, stored_bytes=size, count=LEGACY_TORCH_PICKLES)


def check_pickles(stream: BinaryIO, *, stored_bytes: int, count: int = 1) -> None:
    """Replay ``count`` consecutive pickles of ``stream`` symbolically and enforce the limits.

    Args:
        stream: positioned at the first pickle; it is read past the last one.
        stored_bytes: what the storages the pickles declare may add up to (the file's size).
        count: how many pickles follow each other (:data:`LEGACY_TORCH_PICKLES` for a legacy
            ``torch.save`` stream).

    Raises:
        LoadLimitExceeded: a limit is exceeded.
        ValueError: the stream is not a pickle, or is cut off.
    """
    declared = 0
    for _ in range(count):
        replay = _SymbolicStack()
        for opcode, argument, _position in pickletools.genops(stream):
            replay.apply(opcode.name, argument)
        replay.check()
        declared += replay.declared_storage_bytes
        if declared > stored_bytes:
            raise LoadLimitExceeded(
                f"it declares {declared} bytes of tensor storage, more than the {stored_bytes} bytes the file holds"
            )


def tensor_bytes_budget(stored_bytes: int) -> float:
    """How many bytes of tensors a file of ``stored_bytes`` bytes may yield."""
    return MAX_VIEW_RATIO * stored_bytes + VIEW_SLACK_BYTES


def check_tensor_bytes(payload: Any, *, stored_bytes: int) -> None:
    """Refuse tensors that together span far more bytes than were stored (views of one value).

    ``payload`` has passed :func:`check_pickle_bytes`, so walking it is bounded.
    """
    spanned = sum(t.numel() * t.element_size() for t in _tensors(payload))
    if spanned > tensor_bytes_budget(stored_bytes):
        raise LoadLimitExceeded(
            f"its tensors span {spanned / 2**20:.1f} MiB built from {stored_bytes / 2**20:.2f} MiB of stored "
            "data (views of shared values), which copying them would materialise"
        )


class LoadLimitExceeded(ValueError):
    """A limit of this module was exceeded; the message says which, for the caller's one line."""


class _Node:
    """One object a pickle would build: its contents (shared nodes appear once) and a scalar value."""

    __slots__ = ("children", "value")

    def __init__(self, children: list[_Node] | None = None, value: Any = None) -> None:
        self.children = children if children is not None else []
        self.value = value


class _SymbolicStack:
    """The pickle machine with nodes instead of objects: it builds nothing and calls nothing.

    It tracks what the real unpickler would build (which object contains which, through the memo's
    shared references) and which objects get hashed (dict keys, set members, call arguments), so
    the cost of the real load can be bounded before it runs.
    """

    def __init__(self) -> None:
        self.stack: list[_Node] = []
        self.marks: list[int] = []
        self.memo: dict[int, _Node] = {}
        self.hashed: list[_Node] = []
        self.nodes: list[_Node] = []
        self.storages: dict[Any, int] = {}

    @property
    def declared_storage_bytes(self) -> int:
        return sum(self.storages.values())

    def apply(self, name: str, argument: Any) -> None:
        handler = _HANDLERS.get(name)
        if handler is not None:
            handler(self, argument)
        elif name in _NO_EFFECT:
            return
        elif name in _ATOMS:
            self.push(_Node(value=argument))
        else:
            raise LoadLimitExceeded(f"its pickle uses the {name} opcode, which no checkpoint needs")

    def push(self, node: _Node) -> None:
        self.nodes.append(node)
        self.stack.append(node)

    def pop(self) -> _Node:
        if not self.stack:
            raise ValueError("pickle stack underflow")
        return self.stack.pop()

    def pop_to_mark(self) -> list[_Node]:
        if not self.marks:
            raise ValueError("pickle mark missing")
        start = self.marks.pop()
        if start > len(self.stack):
            raise ValueError("pickle stack underflow")
        items, self.stack[start:] = self.stack[start:], []
        return items

    def top(self) -> _Node:
        if not self.stack:
            raise ValueError("pickle stack underflow")
        return self.stack[-1]

    def check(self) -> None:
        """Enforce the limits on everything the pickle built (call once it reached STOP)."""
        expanded, depth = _expansion(self.nodes)
        largest = max(expanded.values(), default=0)
        if largest > MAX_EXPANDED_OBJECTS:
            raise LoadLimitExceeded(
                f"an object in its pickle expands to more than {MAX_EXPANDED_OBJECTS} parts through shared "
                "references (a hash bomb)"
            )
        deepest = max(depth.values(), default=0)
        if deepest > MAX_NESTING:
            raise LoadLimitExceeded(f"its pickle nests objects more than {MAX_NESTING} deep")
        work = 0
        for node in self.hashed:
            work += expanded[id(node)]
            if work > MAX_HASH_WORK:
                raise LoadLimitExceeded(
                    f"hashing its dict keys and set members would visit more than {MAX_HASH_WORK} objects (a hash bomb)"
                )


def _expansion(nodes: list[_Node]) -> tuple[dict[int, int], dict[int, int]]:
    """Each node's size and depth with shared references expanded, capped just above the limits.

    Iterative (a crafted chain may be millions deep) and linear in the number of nodes; a cycle,
    which no checkpoint holds and which would make the expansion infinite, is refused.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()
    for root in nodes:
        if id(root) in size:
            continue
        pending: list[tuple[_Node, bool]] = [(root, False)]
        while pending:
            node, children_done = pending.pop()
            key = id(node)
            if children_done:
                open_nodes.discard(key)
                total, deepest = 1, 0
                for child in node.children:
                    total += size[id(child)]
                    deepest = max(deepest, depth[id(child)])
                size[key] = min(total, MAX_EXPANDED_OBJECTS + 1)
                depth[key] = min(deepest + 1, MAX_NESTING + 1)
                continue
            if key in size:
                continue
            if key in open_nodes:
                raise LoadLimitExceeded("its pickle holds a reference cycle, which no checkpoint needs")
            open_nodes.add(key)
            pending.append((node, True))
            for child in node.children:
                child_key = id(child)
                if child_key in open_nodes:
                    raise LoadLimitExceeded("its pickle holds a reference cycle, which no checkpoint needs")
                if child_key not in size:
                    pending.append((child, False))
    return size, depth


def _container(replay: _SymbolicStack, _argument: Any) -> None:
    replay.push(_Node())


def _from_mark(replay: _SymbolicStack, _argument: Any, *, hashed: bool = False) -> None:
    items = replay.pop_to_mark()
    if hashed:
        replay.hashed.extend(items)
    replay.push(_Node(items))


def _fixed_tuple(arity: int):
    def handler(replay: _SymbolicStack, _argument: Any) -> None:
        items = [replay.pop() for _ in range(arity)][::-1]
        replay.push(_Node(items))

    return handler


def _append(replay: _SymbolicStack, _argument: Any) -> None:
    value = replay.pop()
    replay.top().children.append(value)


def _extend(replay: _SymbolicStack, _argument: Any, *, hashed: str = "") -> None:
    items = replay.pop_to_mark()
    if hashed == "keys":
        replay.hashed.extend(items[0::2])
    elif hashed == "all":
        replay.hashed.extend(items)
    replay.top().children.extend(items)


def _set_item(replay: _SymbolicStack, _argument: Any) -> None:
    value, key = replay.pop(), replay.pop()
    replay.hashed.append(key)
    replay.top().children.extend((key, value))


def _dict_from_mark(replay: _SymbolicStack, _argument: Any) -> None:
    items = replay.pop_to_mark()
    replay.hashed.extend(items[0::2])
    replay.push(_Node(items))


def _memo_put(replay: _SymbolicStack, argument: Any) -> None:
    replay.memo[int(argument)] = replay.top()


def _memoize(replay: _SymbolicStack, _argument: Any) -> None:
    replay.memo[len(replay.memo)] = replay.top()


def _memo_get(replay: _SymbolicStack, argument: Any) -> None:
    try:
        replay.stack.append(replay.memo[int(argument)])
    except KeyError:
        raise ValueError(f"pickle memo key {argument} missing") from None


def _global(replay: _SymbolicStack, argument: Any) -> None:
    module, _, name = str(argument).partition(" ")
    replay.push(_Node(value=(module, name)))


def _stack_global(replay: _SymbolicStack, _argument: Any) -> None:
    name, module = replay.pop(), replay.pop()
    replay.push(_Node(value=(module.value, name.value)))


def _call(replay: _SymbolicStack, _argument: Any) -> None:
    arguments, function = replay.pop(), replay.pop()
    # A call may hash its arguments (set(...), OrderedDict(...)): count them like dict keys.
    replay.hashed.append(arguments)
    replay.push(_Node([function, arguments]))


def _new_object_with_keywords(replay: _SymbolicStack, _argument: Any) -> None:
    keywords, arguments, cls = replay.pop(), replay.pop(), replay.pop()
    replay.hashed.extend((arguments, keywords))
    replay.push(_Node([cls, arguments, keywords]))


def _build(replay: _SymbolicStack, _argument: Any) -> None:
    state = replay.pop()
    replay.hashed.append(state)
    replay.top().children.append(state)


def _mark(replay: _SymbolicStack, _argument: Any) -> None:
    replay.marks.append(len(replay.stack))


def _pop(replay: _SymbolicStack, _argument: Any) -> None:
    replay.pop()


def _pop_mark(replay: _SymbolicStack, _argument: Any) -> None:
    replay.pop_to_mark()


def _dup(replay: _SymbolicStack, _argument: Any) -> None:
    replay.stack.append(replay.top())


def _persistent_id(replay: _SymbolicStack, argument: Any) -> None:
    pid = replay.pop() if argument is None else _Node(value=argument)
    _count_storage(replay, pid)
    replay.push(_Node([pid]))


def _count_storage(replay: _SymbolicStack, pid: _Node) -> None:
    """torch's storage ids are ``('storage', StorageType, key, location, numel, ...)``: torch
    allocates ``numel`` elements when it meets one, before reading the data."""
    parts = pid.children
    if len(parts) < 5 or parts[0].value != "storage":
        return
    numel, key, storage_type = parts[4].value, parts[2].value, parts[1].value
    if not isinstance(numel, int) or numel < 0:
        raise ValueError("a tensor storage declares no valid size")
    type_name = storage_type[1] if isinstance(storage_type, tuple) else ""
    item_bytes = _STORAGE_ITEM_BYTES.get(type_name, _UNKNOWN_ITEM_BYTES)
    replay.storages[key] = max(replay.storages.get(key, 0), numel * item_bytes)


_ATOMS = {
    "NONE", "NEWTRUE", "NEWFALSE", "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4",
    "FLOAT", "BINFLOAT", "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE",
    "BINUNICODE", "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8",
    "EXT1", "EXT2", "EXT4",
}  # fmt: skip
_NO_EFFECT = {"PROTO", "FRAME", "STOP", "READONLY_BUFFER"}
_HANDLERS = {
    "EMPTY_TUPLE": _container,
    "EMPTY_LIST": _container,
    "EMPTY_DICT": _container,
    "EMPTY_SET": _container,
    "MARK": _mark,
    "TUPLE": _from_mark,
    "TUPLE1": _fixed_tuple(1),
    "TUPLE2": _fixed_tuple(2),
    "TUPLE3": _fixed_tuple(3),
    "LIST": _from_mark,
    "DICT": _dict_from_mark,
    "FROZENSET": lambda replay, argument: _from_mark(replay, argument, hashed=True),
    "APPEND": _append,
    "APPENDS": _extend,
    "SETITEM": _set_item,
    "SETITEMS": lambda replay, argument: _extend(replay, argument, hashed="keys"),
    "ADDITEMS": lambda replay, argument: _extend(replay, argument, hashed="all"),
    "PUT": _memo_put,
    "BINPUT": _memo_put,
    "LONG_BINPUT": _memo_put,
    "MEMOIZE": _memoize,
    "GET": _memo_get,
    "BINGET": _memo_get,
    "LONG_BINGET": _memo_get,
    "GLOBAL": _global,
    "STACK_GLOBAL": _stack_global,
    "REDUCE": _call,
    "NEWOBJ": _call,
    "NEWOBJ_EX": _new_object_with_keywords,
    "INST": lambda replay, argument: _from_mark(replay, argument, hashed=True),
    "OBJ": lambda replay, argument: _from_mark(replay, argument, hashed=True),
    "BUILD": _build,
    "POP": _pop,
    "POP_MARK": _pop_mark,
    "DUP": _dup,
    "PERSID": _persistent_id,
    "BINPERSID": _persistent_id,
}


def _tensors(payload: Any) -> Iterator[torch.Tensor]:
    """Every tensor in a loaded payload (plain containers only; shared ones counted each time)."""
    pending = [payload]
    while pending:
        item = pending.pop()
        if isinstance(item, torch.Tensor):
            yield item
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1][:200] if lines else type(error).__name__
