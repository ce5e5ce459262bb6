"""Reading NVIDIA StyleGAN2-ADA-PyTorch network pickles without running any code from them.

NVIDIA's ``network-snapshot-*.pkl`` files are plain Python pickles. Their networks are written by
``torch_utils.persistence``, which stores the *source text* of the network module next to each
object and ``exec``s it on load, so ``pickle.load`` on such a file runs whatever code it carries.
This module never does that. It unpickles with an exact allowlist of the globals that NVIDIA's
writers emit and turns every persistent network object into a passive :class:`_PersistentRecord`
(class name + instance ``__dict__``); the stored source text is never read. The ``G_ema`` tensors are
then collected from the records' ``_parameters``/``_buffers``/``_modules`` and renamed to the
PyTorch port's (rosinality) layout, following section 7 of the ADA fixture README.

Only what sphinx's StyleGAN2 port implements is accepted: unconditional, ``architecture='skip'``,
RGB, ``z_dim == w_dim``, leaky-ReLU, the ``[1, 3, 3, 1]`` resampling filter and noise inputs.
Everything else is refused with a one-line :class:`~sphinx.errors.CheckpointError`.
"""

from __future__ import annotations

import collections
import io
import math
import numbers
import os
import pickle
import reprlib
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy
import torch

from sphinx.errors import CheckpointError
from sphinx.generators.stylegan2 import MAX_RESOLUTION
from sphinx.utils.untrusted_files import (
    LEGACY_TORCH_PICKLES,
    LoadLimitExceeded,
    check_pickles,
    require_regular_file,
    tensor_bytes_budget,
)

# The ADA Generator's positional parameters, in order; a generator constructed positionally
# records them in ``_init_args`` instead of ``_init_kwargs``.
_GENERATOR_PARAMETERS = (
    "z_dim",
    "c_dim",
    "w_dim",
    "img_resolution",
    "img_channels",
    "mapping_kwargs",
    "synthesis_kwargs",
)
_REQUIRED_GENERATOR_KWARGS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")

# MappingNetwork keywords and their class defaults (identical in StyleGAN2-ADA and in StyleGAN3's
# networks_stylegan2 except w_avg_beta, which only matters while training and is not read).
_MAPPING_DEFAULTS: dict[str, Any] = {
    "num_layers": 8,
    "embed_features": None,
    "layer_features": None,
    "activation": "lrelu",
    "lr_multiplier": 0.01,
    "w_avg_beta": 0.995,
}

# SynthesisNetwork/-Block/-Layer keywords and their ADA class defaults. conv_clamp is absent on
# purpose: it is read from the layers themselves (see _read_conv_clamp).
_SYNTHESIS_DEFAULTS: dict[str, Any] = {
    "channel_base": 32768,
    "channel_max": 512,
    "num_fp16_res": 0,
    "architecture": "skip",
    "resample_filter": [1, 3, 3, 1],
    "use_noise": True,
    "activation": "lrelu",
}
# Keywords that only choose precision, memory layout or a mathematically equivalent fused kernel;
# a float32 reimplementation computes the same function whatever they say.
_SYNTHESIS_RUNTIME_ONLY = frozenset({"conv_clamp", "fp16_channels_last", "channels_last", "fused_modconv_default"})
_SUPPORTED_FILTER_TAPS = [1, 3, 3, 1]

# How the persistence module calls its reconstruction function; the module path differs between
# NVIDIA's repositories (and forks), so only the last component is matched.
_PERSISTENCE_FUNCTION = "_reconstruct_persistent_obj"
_PERSISTENCE_MODULE_SUFFIX = "persistence"

# A pickle protocol 2+ stream starts with the PROTO opcode; every NVIDIA writer uses 3 or 4.
_PROTO_OPCODE = b"\x80"
_ZIP_MAGIC = b"PK\x03\x04"
_MAX_MODULE_DEPTH = 64
# Constructor keywords are scalars and one short filter list; anything deeper or larger is crafted
# (a self-referencing list recurses forever, a list sharing its items 40 levels deep is 2^40 visits).
_MAX_SETTING_DEPTH = 4
_MAX_SETTING_ITEMS = 1000
_MAX_FILTER_TAPS = 16
# Bounded repr for messages: a crafted value must not make the error message itself hang.
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxtuple, _SHOWN.maxdict, _SHOWN.maxset = 3, 8, 8, 8, 8
_SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlong = 60, 60, 40


@dataclass(frozen=True)
class NvidiaGenerator:
    """The ``G_ema`` network of an NVIDIA pickle, in the PyTorch port's format.

    Attributes:
        state_dict: G_ema converted to the port's (rosinality) names and shapes, in the port's
            ``state_dict`` order, including the ``noises.noise_j`` buffers (copied from ADA's
            ``noise_const``). The FIR kernel buffers (``*.blur.kernel``, ``*.upsample.kernel``) are
            not included: the port rebuilds them from ``[1, 3, 3, 1]``, which this reader checks.
        latent_avg: ``[w_dim]`` float32, the stored ``mapping.w_avg`` (cannot be recomputed).
        conv_clamp: the value every synthesis layer and ToRGB output is clamped to (±), or None.
        lr_mlp: the mapping network's learning-rate multiplier (NVIDIA's default 0.01).
        init_kwargs: G_ema's constructor keywords as recorded in the file, as plain nested dicts
            (positional arguments, if any, merged in under their parameter names).
    """

    state_dict: dict[str, torch.Tensor]
    latent_avg: torch.Tensor
    conv_clamp: float | None
    lr_mlp: float
    init_kwargs: dict


@dataclass(frozen=True)
class _PersistentRecord:
    """What a ``torch_utils.persistence`` object is read as: its class name and ``__dict__``.

    Nothing about it is callable; the ``module_src`` text stored next to it is dropped unread.
    """

    class_name: str
    state: dict


@dataclass(frozen=True)
class _Storage:
    """One tensor payload, viewed as a flat tensor over its whole storage.

    Only ``_load_from_bytes`` makes these, so ``_rebuild_tensor_v2`` can tell a real payload from
    any other object a crafted stream might hand it.
    """

    flat: torch.Tensor  # [numel], storage offset 0


class _EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a plain dict that accepts no attribute state."""

    # No instance __dict__, so a BUILD opcode aimed at it fails instead of planting attributes.
    __slots__ = ()


def read_nvidia_pickle(path: str | os.PathLike) -> NvidiaGenerator:
    """Read the ``G_ema`` generator of a StyleGAN2-ADA-PyTorch network pickle, executing nothing.

    Args:
        path: a ``.pkl`` file as written by NVIDIA's ``training_loop.py`` (a dict with ``G_ema``),
            or by a re-pickling tool that keeps the same structure (pickle protocol 2 to 5).

    Returns:
        The converted generator tensors and the settings the port needs (see
        :class:`NvidiaGenerator`).

    Raises:
        CheckpointError: the file references a global outside the allowlist (it is then neither
            executed nor loaded further), is truncated or corrupt, holds no ``G_ema``, or describes
            a generator the port does not implement (conditional, non-'skip', not RGB,
            ``z_dim != w_dim``, not lrelu, another resampling filter, no noise inputs, StyleGAN3).
        OSError: the file cannot be opened.
    """
    where = os.fspath(require_regular_file(path, what="network pickle"))
    with open(where, "rb") as file:
        data = _unpickle(file, where, stored_bytes=os.fstat(file.fileno()).st_size)
    generator = _find_generator(data, where)
    init_kwargs = _constructor_kwargs(generator, where)
    config = _read_config(init_kwargs, where)
    ada_tensors = _collect_tensors(generator, where)
    _check_tensors(ada_tensors, config, where)
    conv_clamp = _read_conv_clamp(generator, config, where)
    return NvidiaGenerator(
        state_dict=_to_port_layout(ada_tensors, config),
        latent_avg=ada_tensors["mapping.w_avg"],
        conv_clamp=conv_clamp,
        lr_mlp=config.lr_multiplier,
        init_kwargs=_plain(init_kwargs, where),
    )


# --------------------------------------------------------------------------------------------
# Unpickling
# --------------------------------------------------------------------------------------------


def _unpickle(file: BinaryIO, where: str, *, stored_bytes: int) -> object:
    """Run the restricted unpickler over ``file``, turning every failure into a CheckpointError.

    The stream is replayed symbolically first (:func:`~sphinx.utils.untrusted_files.check_pickles`),
    so a hash bomb is refused before Python would hash it; the tensors built may together span at
    most what ``stored_bytes`` of file can honestly hold.
    """
    head = file.read(4)
    if head.startswith(_ZIP_MAGIC):
        raise CheckpointError(
            f"{where}: is a zip archive (torch.save format), not an NVIDIA network "
            "pickle; load it as a .pt checkpoint of the PyTorch port instead"
        )
    if not head.startswith(_PROTO_OPCODE):
        raise CheckpointError(
            f"{where}: not a network pickle (no pickle protocol 2+ header); "
            "check that the file is a StyleGAN2-ADA .pkl and re-download it"
        )
    file.seek(0)
    try:
        check_pickles(file, stored_bytes=stored_bytes)
        file.seek(0)
        return _RestrictedUnpickler(file, where, viewable_bytes=tensor_bytes_budget(stored_bytes)).load()
    except LoadLimitExceeded as refused:
        raise CheckpointError(f"{where}: refused: {refused} (nothing in this network pickle was run)") from None
    except CheckpointError:
        raise
    except OSError:
        raise
    except Exception as error:  # noqa: BLE001 - any failure inside an untrusted stream means "corrupt"
        # EOFError/UnpicklingError for cut-off files; ValueError, TypeError, KeyError, UnicodeError,
        # MemoryError, RuntimeError for garbage that happens to parse partway.
        raise CheckpointError(
            f"{where}: truncated or corrupt network pickle ({_one_line(error)}); re-download or re-export the file"
        ) from None


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals NVIDIA's network pickles are known to use.

    ``find_class`` serves GLOBAL, STACK_GLOBAL and EXT opcodes alike, and it never imports: every
    allowed name maps to a function defined here (or a harmless builtin type), so a refused name
    cannot run anything, and neither can an allowed one beyond building data.
    """

    def __init__(self, file: BinaryIO, where: str, *, viewable_bytes: float) -> None:
        super().__init__(file)
        self._where = where
        # What the tensors built may span together; views of one stored value must not multiply it.
        self._viewable_bytes = viewable_bytes
        self._allowed: dict[tuple[str, str], Any] = {
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("torch._utils", "_rebuild_parameter"): self._rebuild_parameter,
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor_v2,
            ("torch.storage", "_load_from_bytes"): self._load_from_bytes,
            # numpy < 2 writers (all of NVIDIA's files) and numpy >= 2 writers name it differently.
            ("numpy.core.multiarray", "scalar"): self._numpy_scalar,
            ("numpy._core.multiarray", "scalar"): self._numpy_scalar,
            ("numpy", "dtype"): self._numpy_dtype,
            ("dnnlib.util", "EasyDict"): _EasyDict,
            # Protocol 3 writes sets by REDUCE of builtins.set; protocol 2 uses the Python 2 name
            # (find_class is overridden, so the unpickler's own 2->3 name fixing never runs).
            ("builtins", "set"): set,
            ("__builtin__", "set"): set,
            # Protocol 2 has no bytes opcode and writes bytes as _codecs.encode(latin-1 text).
            ("_codecs", "encode"): self._latin1_encode,
        }

    def find_class(self, module: str, name: str) -> Any:
        """Resolve an allowlisted global; refuse anything else before it is imported or called."""
        allowed = self._allowed.get((module, name))
        if allowed is not None:
            return allowed
        if name == _PERSISTENCE_FUNCTION and module.rsplit(".", 1)[-1] == _PERSISTENCE_MODULE_SUFFIX:
            return self._persistent_record
        hint = ""
        if str(module).startswith("dnnlib.tflib"):
            hint = " (it looks like a TensorFlow StyleGAN pickle, which is not supported)"
        raise CheckpointError(
            f"{self._where}: refused pickle global {_printable(module)}.{_printable(name)}"
            f"{hint}; the file is not a plain network pickle and was not executed"
        )

    def persistent_load(self, pid: Any) -> Any:
        """Refuse persistent ids: network pickles have none (legacy ``torch.save`` files do)."""
        raise CheckpointError(
            f"{self._where}: uses pickle persistent ids, so it is not a plain network "
            "pickle (a torch.save file?); it was not executed"
        )

    def _persistent_record(self, meta: Any) -> _PersistentRecord:
        """Stand-in for ``persistence._reconstruct_persistent_obj``: keep the data, drop the code."""
        if not (
            isinstance(meta, dict)
            and meta.get("type") == "class"
            and isinstance(meta.get("class_name"), str)
            and isinstance(meta.get("state"), dict)
        ):
            raise CheckpointError(
                f"{self._where}: a persistent object has an unknown layout; "
                "the file is not a plain network pickle and was not executed"
            )
        # meta["module_src"] is the network source the real loader exec()s; it is never looked at.
        return _PersistentRecord(class_name=meta["class_name"], state=meta["state"])

    def _load_from_bytes(self, payload: Any) -> _Storage:
        """Read one tensor storage (a complete legacy ``torch.save`` stream) without running code."""
        if not isinstance(payload, bytes):
            raise CheckpointError(
                f"{self._where}: a tensor payload is not bytes; "
                "the file is not a plain network pickle and was not executed"
            )
        try:
            # A payload is itself a legacy torch.save stream, with pickles of its own to bound.
            check_pickles(io.BytesIO(payload), stored_bytes=len(payload), count=LEGACY_TORCH_PICKLES)
            # map_location: third-party pickles of CUDA tensors name "cuda:N" inside the payload.
            storage = torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
        except LoadLimitExceeded:
            raise
        except Exception as error:  # noqa: BLE001 - torch refuses unsafe payloads with various types
            raise CheckpointError(
                f"{self._where}: a tensor payload was refused by torch's weights-only "
                f"loader ({_one_line(error)}); the file is not a plain network pickle "
                "and was not executed"
            ) from None
        if not isinstance(storage, torch.storage.TypedStorage):
            raise CheckpointError(
                f"{self._where}: a tensor payload holds a {type(storage).__name__}, "
                "not a storage; the file is not a plain network pickle"
            )
        # A flat tensor over the storage: its numel is the bound every view is checked against, and
        # nothing below touches the deprecated TypedStorage API again.
        return _Storage(flat=torch.empty((0,), dtype=storage.dtype).set_(storage))

    def _rebuild_tensor_v2(
        self,
        storage: Any,
        storage_offset: Any,
        size: Any,
        stride: Any,
        requires_grad: Any = False,
        backward_hooks: Any = None,
        metadata: Any = None,
    ) -> torch.Tensor:
        """View a storage as a tensor, after checking that the view stays inside the storage."""
        if not isinstance(storage, _Storage):
            raise CheckpointError(
                f"{self._where}: a tensor is built from a {type(storage).__name__}, "
                "not a storage; the file is not a plain network pickle"
            )
        if metadata:
            # Tensor metadata (e.g. conjugate/negative bits) would change the values; NVIDIA never writes it.
            raise CheckpointError(
                f"{self._where}: a tensor carries unsupported metadata; the file is not a plain network pickle"
            )
        offset, size, stride = _index(storage_offset), _indices(size), _indices(stride)
        if offset is None or size is None or stride is None or len(size) != len(stride):
            raise CheckpointError(
                f"{self._where}: a tensor has an invalid size, stride or offset; the file is truncated or corrupt"
            )
        # torch's own rebuild (Tensor.set_) silently *grows* a storage that is too small, filling it
        # with uninitialised memory, so the extent is checked here rather than trusting the stream.
        available = storage.flat.numel()
        if math.prod(size) > 0:
            last = offset + sum((extent - 1) * step for extent, step in zip(size, stride))
            if last >= available:
                raise CheckpointError(
                    f"{self._where}: a tensor of size {list(size)} reaches past the end "
                    f"of its storage ({available} elements); the file is corrupt"
                )
        self._viewable_bytes -= math.prod(size) * storage.flat.element_size()
        if self._viewable_bytes < 0:
            raise LoadLimitExceeded(
                "its tensors span far more bytes than the file stores (views of shared values), "
                "which copying them would materialise"
            )
        return storage.flat.as_strided(size, stride, offset)

    def _rebuild_parameter(
        self, data: Any, requires_grad: Any = False, backward_hooks: Any = None, *unused: Any
    ) -> torch.Tensor:
        """Keep a parameter as its plain data tensor (gradients and hooks are of no use here)."""
        if not isinstance(data, torch.Tensor):
            raise CheckpointError(
                f"{self._where}: a parameter wraps a {type(data).__name__}, "
                "not a tensor; the file is not a plain network pickle"
            )
        return data

    def _numpy_scalar(self, dtype: Any, raw: Any) -> numpy.generic:
        """Rebuild a numeric numpy scalar from its raw bytes (object scalars are refused)."""
        if not (
            isinstance(dtype, numpy.dtype)
            and dtype.kind in "biufc"
            and isinstance(raw, bytes)
            and len(raw) == dtype.itemsize
        ):
            raise CheckpointError(
                f"{self._where}: a numpy scalar is not a plain number; "
                "the file is not a plain network pickle and was not executed"
            )
        return numpy.frombuffer(raw, dtype=dtype)[0]

    def _numpy_dtype(self, spec: Any, align: Any = False, copy: Any = True) -> numpy.dtype:
        """Build a numpy dtype from its type string only (never from an object or a callable)."""
        if not isinstance(spec, str):
            raise CheckpointError(
                f"{self._where}: a numpy dtype is built from a {type(spec).__name__}; "
                "the file is not a plain network pickle and was not executed"
            )
        return numpy.dtype(spec, bool(align), bool(copy))

    def _latin1_encode(self, text: Any, encoding: Any = "latin1") -> bytes:
        """Protocol 2's spelling of a bytes literal; any other codec use is refused."""
        if not (isinstance(text, str) and encoding in ("latin1", "latin-1")):
            raise CheckpointError(
                f"{self._where}: refused pickle global _codecs.encode with encoding "
                f"{_shown(encoding)}; the file is not a plain network pickle"
            )
        return text.encode("latin-1")


def _index(value: Any) -> int | None:
    """A non-negative int from the stream, or None."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0:
        return int(value)
    return None


def _indices(values: Any) -> tuple[int, ...] | None:
    """A tuple of non-negative ints from the stream (a torch.Size pickles as a tuple), or None."""
    if not isinstance(values, (tuple, list)):
        return None
    checked = tuple(_index(value) for value in values)
    return None if any(value is None for value in checked) else checked


# --------------------------------------------------------------------------------------------
# From records to G_ema tensors and settings
# --------------------------------------------------------------------------------------------


def _find_generator(data: object, where: str) -> _PersistentRecord:
    """The ``G_ema`` record of a snapshot dict (never ``G``: that is the non-averaged network)."""
    if not isinstance(data, dict):
        raise CheckpointError(
            f"{where}: holds a {type(data).__name__}, not a dict of networks; "
            "expected an NVIDIA StyleGAN2-ADA network pickle"
        )
    if "G_ema" not in data:
        keys = sorted(_printable(key) for key in list(data)[:64])[:8]
        raise CheckpointError(
            f"{where}: has no 'G_ema' network (found {keys}); expected an NVIDIA StyleGAN2-ADA network pickle"
        )
    generator = data["G_ema"]
    if not isinstance(generator, _PersistentRecord):
        raise CheckpointError(
            f"{where}: 'G_ema' is a {type(generator).__name__}, not a persistent "
            "network object; expected an NVIDIA StyleGAN2-ADA network pickle"
        )
    if generator.class_name != "Generator":
        raise CheckpointError(
            f"{where}: 'G_ema' is a {_printable(generator.class_name)}, not a Generator; "
            "expected an NVIDIA StyleGAN2-ADA network pickle"
        )
    return generator


def _constructor_kwargs(generator: _PersistentRecord, where: str) -> dict:
    """G_ema's constructor arguments, positional ones merged in under their names."""
    args = generator.state.get("_init_args", ())
    kwargs = generator.state.get("_init_kwargs")
    if not isinstance(kwargs, dict) or not isinstance(args, (tuple, list)) or len(args) > len(_GENERATOR_PARAMETERS):
        raise CheckpointError(
            f"{where}: G_ema does not record its constructor arguments; expected an NVIDIA StyleGAN2-ADA network pickle"
        )
    merged = dict(zip(_GENERATOR_PARAMETERS, args))
    merged.update(kwargs)
    return merged


@dataclass(frozen=True)
class _Config:
    """The G_ema settings that decide tensor names and shapes."""

    w_dim: int
    resolution: int
    num_mapping_layers: int
    lr_multiplier: float
    channel_base: int
    channel_max: int
    conv_clamp_given: bool  # whether the constructor keywords name conv_clamp at all
    conv_clamp: float | None  # their value (None = no clamping) when given

    def channels(self, resolution: int) -> int:
        """Feature maps of the block at ``resolution`` (NVIDIA's channel table)."""
        return min(self.channel_base // resolution, self.channel_max)

    @property
    def block_resolutions(self) -> list[int]:
        """4, 8, ..., resolution."""
        return [2**k for k in range(2, int(math.log2(self.resolution)) + 1)]


def _read_config(kwargs: dict, where: str) -> _Config:
    """Validate G_ema's constructor keywords against what the port implements."""

    def refuse(problem: str) -> CheckpointError:
        return CheckpointError(f"{where}: {problem}")

    missing = [key for key in _REQUIRED_GENERATOR_KWARGS if key not in kwargs]
    if missing:
        raise refuse(f"G_ema's constructor arguments lack {missing}; expected an NVIDIA StyleGAN2-ADA network pickle")
    z_dim, c_dim, w_dim = (
        _positive_int(kwargs[key], key, where, allow_zero=key == "c_dim") for key in ("z_dim", "c_dim", "w_dim")
    )
    resolution = _positive_int(kwargs["img_resolution"], "img_resolution", where)
    img_channels = _positive_int(kwargs["img_channels"], "img_channels", where)
    if c_dim > 0:
        raise refuse(f"conditional generators are not supported (c_dim={c_dim}); use an unconditional StyleGAN2 pickle")
    if img_channels != 3:
        raise refuse(f"only RGB generators are supported (img_channels={img_channels})")
    if z_dim != w_dim:
        raise refuse(f"z_dim={z_dim} differs from w_dim={w_dim}; the PyTorch port needs them equal")
    if resolution < 4 or resolution & (resolution - 1):
        raise refuse(f"img_resolution={resolution} is not a power of two >= 4")
    if resolution > MAX_RESOLUTION:
        raise refuse(f"img_resolution={resolution} is above the {MAX_RESOLUTION} px this reader accepts")

    mapping, synthesis = kwargs.get("mapping_kwargs", {}), kwargs.get("synthesis_kwargs", {})
    if not isinstance(mapping, dict) or not isinstance(synthesis, dict):
        raise refuse(
            "mapping_kwargs or synthesis_kwargs is not a dict; expected an NVIDIA StyleGAN2-ADA network pickle"
        )
    # StyleGAN2-ADA nests the synthesis keywords under synthesis_kwargs; StyleGAN3's
    # networks_stylegan2.Generator takes them as top-level **kwargs instead.
    synthesis = dict(synthesis)
    for key, value in kwargs.items():
        if key not in _GENERATOR_PARAMETERS:
            synthesis[key] = value
    unknown = sorted(_printable(key) for key in set(mapping) - set(_MAPPING_DEFAULTS))
    unknown += sorted(_printable(key) for key in set(synthesis) - set(_SYNTHESIS_DEFAULTS) - _SYNTHESIS_RUNTIME_ONLY)
    if unknown:
        raise refuse(
            f"G_ema has constructor arguments this reader does not know: {unknown}; "
            "only StyleGAN2-ADA generators are supported"
        )
    mapping = {**_MAPPING_DEFAULTS, **mapping}
    settings = {**_SYNTHESIS_DEFAULTS, **synthesis}
    _check_setting_types(mapping, settings, refuse)

    # Type checks come first: a crafted file may put e.g. a tensor where a string belongs, and
    # comparing that would raise instead of refusing.
    if not _is_text(settings["architecture"], "skip"):
        raise refuse(
            f"architecture={_shown(settings['architecture'])} is not supported; only the default 'skip' generator is"
        )
    for owner, activation in (("synthesis", settings["activation"]), ("mapping", mapping["activation"])):
        if not _is_text(activation, "lrelu"):
            raise refuse(f"{owner} activation={_shown(activation)} is not supported; only 'lrelu' is")
    if settings["use_noise"] is not True:
        raise refuse("generators without noise inputs (use_noise=False) are not supported")
    taps = settings["resample_filter"]
    if not (
        isinstance(taps, (list, tuple))
        and all(_index(tap) is not None for tap in taps)
        and [int(tap) for tap in taps] == _SUPPORTED_FILTER_TAPS
    ):
        raise refuse(f"resample_filter={_shown(taps)} is not supported; only [1, 3, 3, 1] is")
    if mapping["layer_features"] is not None and _index(mapping["layer_features"]) != w_dim:
        raise refuse(
            f"mapping layer_features={_shown(mapping['layer_features'])} differs from "
            f"w_dim={w_dim}; the PyTorch port needs them equal"
        )
    lr_multiplier = mapping["lr_multiplier"]
    if not isinstance(lr_multiplier, numbers.Real) or isinstance(lr_multiplier, bool) or not lr_multiplier > 0:
        raise refuse(f"mapping lr_multiplier={_shown(lr_multiplier)} is not a positive number")
    return _Config(
        w_dim=w_dim,
        resolution=resolution,
        num_mapping_layers=_positive_int(mapping["num_layers"], "mapping num_layers", where),
        lr_multiplier=float(lr_multiplier),
        channel_base=_positive_int(settings["channel_base"], "channel_base", where),
        channel_max=_positive_int(settings["channel_max"], "channel_max", where),
        conv_clamp_given="conv_clamp" in synthesis,
        conv_clamp=_clamp_value(synthesis.get("conv_clamp"), where),
    )


def _check_setting_types(mapping: dict, settings: dict, refuse) -> None:
    """Every keyword the reader accepts has the type NVIDIA's code gives it, or the file is refused.

    Keywords that only choose precision or a kernel are not read further, but they are still
    returned in ``init_kwargs``, so an odd value there must not pass unchecked.
    """

    def optional_count(value: Any) -> bool:
        return value is None or _index(value) is not None

    def real(value: Any) -> bool:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)

    checks = {
        ("mapping", "embed_features"): optional_count(mapping["embed_features"]),
        ("mapping", "layer_features"): optional_count(mapping["layer_features"]),
        ("mapping", "w_avg_beta"): mapping["w_avg_beta"] is None or real(mapping["w_avg_beta"]),
        ("synthesis", "num_fp16_res"): _index(settings["num_fp16_res"]) is not None,
        ("synthesis", "use_noise"): isinstance(settings["use_noise"], bool),
        ("synthesis", "resample_filter"): isinstance(settings["resample_filter"], (list, tuple))
        and len(settings["resample_filter"]) <= _MAX_FILTER_TAPS
        and all(real(tap) for tap in settings["resample_filter"]),
        ("synthesis", "fp16_channels_last"): isinstance(settings.get("fp16_channels_last", False), bool),
        ("synthesis", "channels_last"): isinstance(settings.get("channels_last", False), bool),
        # StyleGAN3's copy of the network also accepts the string 'inference_only'.
        ("synthesis", "fused_modconv_default"): isinstance(settings.get("fused_modconv_default", True), (bool, str))
        and len(str(settings.get("fused_modconv_default", True))) <= 32,
    }
    for (owner, key), ok in checks.items():
        if not ok:
            value = (mapping if owner == "mapping" else settings)[key]
            raise refuse(f"{owner} {key}={_shown(value)} is not a valid value; the file is corrupt")


def _positive_int(value: Any, name: str, where: str, *, allow_zero: bool = False) -> int:
    """An int setting from the file, refused if it is not a (positive) integer."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and (value > 0 or allow_zero and value == 0):
        return int(value)
    raise CheckpointError(
        f"{where}: G_ema setting {name}={_shown(value)} is not a "
        f"{'non-negative' if allow_zero else 'positive'} integer; the file is corrupt"
    )


def _is_text(value: Any, expected: str) -> bool:
    """Whether a setting from the file is exactly the string ``expected``."""
    return isinstance(value, str) and value == expected


def _clamp_value(value: Any, where: str) -> float | None:
    """conv_clamp as stored: None (no clamping) or a positive number."""
    if value is None:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and value > 0:
        return float(value)
    raise CheckpointError(f"{where}: conv_clamp={_shown(value)} is neither None nor a positive number")


def _children(record: _PersistentRecord, where: str) -> dict[str, _PersistentRecord]:
    """A record's sub-modules by name (None entries, which torch allows, are dropped)."""
    modules = record.state.get("_modules", {})
    if not isinstance(modules, dict):
        raise CheckpointError(f"{where}: a {_printable(record.class_name)} has no module table; the file is corrupt")
    children = {}
    for name, child in modules.items():
        if child is None:
            continue
        if not isinstance(name, str) or not isinstance(child, _PersistentRecord):
            raise CheckpointError(
                f"{where}: sub-module {_printable(name)} of a "
                f"{_printable(record.class_name)} is not a network object; the file is corrupt"
            )
        children[name] = child
    return children


def _collect_tensors(generator: _PersistentRecord, where: str) -> dict[str, torch.Tensor]:
    """G_ema's persistent parameters and buffers, named and ordered as ``G_ema.state_dict()``."""
    tensors: dict[str, torch.Tensor] = {}
    visited: set[int] = set()

    def visit(record: _PersistentRecord, prefix: str, depth: int) -> None:
        # A crafted stream can make a module its own descendant, or share one module many times over
        # (exponential work); a real network is a tree, so any repeat is refused.
        if id(record) in visited or depth > _MAX_MODULE_DEPTH:
            raise CheckpointError(f"{where}: G_ema's modules do not form a tree; the file is corrupt")
        visited.add(id(record))
        state = record.state
        parameters, buffers = state.get("_parameters", {}), state.get("_buffers", {})
        skipped = state.get("_non_persistent_buffers_set", set())
        if (
            not isinstance(parameters, dict)
            or not isinstance(buffers, dict)
            or not isinstance(skipped, (set, frozenset))
        ):
            raise CheckpointError(
                f"{where}: a {_printable(record.class_name)} at {_shown(prefix)} lacks its "
                "parameter tables; the file is corrupt"
            )
        entries = list(parameters.items()) + [(k, v) for k, v in buffers.items() if k not in skipped]
        for name, tensor in entries:
            if tensor is None:
                continue
            if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
                raise CheckpointError(
                    f"{where}: entry {_printable(name)} of {_shown(prefix)} is not a tensor; the file is corrupt"
                )
            tensors[prefix + name] = tensor
        for name, child in _children(record, where).items():
            visit(child, f"{prefix}{name}.", depth + 1)

    visit(generator, "", 0)
    return tensors


def _expected_shapes(config: _Config) -> dict[str, tuple[int, ...]]:
    """Every tensor an unconditional 'skip' StyleGAN2-ADA G_ema with ``config`` has, with its shape."""
    w_dim, shapes = config.w_dim, {}
    for resolution in config.block_resolutions:
        block, out_channels = f"synthesis.b{resolution}", config.channels(resolution)
        shapes[f"{block}.resample_filter"] = (4, 4)
        if resolution == 4:
            shapes[f"{block}.const"] = (out_channels, 4, 4)
            layers = [("conv1", out_channels)]
        else:
            layers = [("conv0", config.channels(resolution // 2)), ("conv1", out_channels)]
        for layer, in_channels in layers:
            name = f"{block}.{layer}"
            shapes.update(
                {
                    f"{name}.weight": (out_channels, in_channels, 3, 3),
                    f"{name}.noise_strength": (),
                    f"{name}.bias": (out_channels,),
                    f"{name}.resample_filter": (4, 4),
                    f"{name}.noise_const": (resolution, resolution),
                    f"{name}.affine.weight": (in_channels, w_dim),
                    f"{name}.affine.bias": (in_channels,),
                }
            )
        shapes.update(
            {
                f"{block}.torgb.weight": (3, out_channels, 1, 1),
                f"{block}.torgb.bias": (3,),
                f"{block}.torgb.affine.weight": (out_channels, w_dim),
                f"{block}.torgb.affine.bias": (out_channels,),
            }
        )
    shapes["mapping.w_avg"] = (w_dim,)
    for index in range(config.num_mapping_layers):
        # z_dim == w_dim and layer_features == w_dim were checked, so every layer is w_dim x w_dim.
        shapes[f"mapping.fc{index}.weight"] = (w_dim, w_dim)
        shapes[f"mapping.fc{index}.bias"] = (w_dim,)
    return shapes


def _check_tensors(tensors: dict[str, torch.Tensor], config: _Config, where: str) -> None:
    """Strict check: exactly the expected names, shapes, float32, and the [1, 3, 3, 1] filters."""
    expected = _expected_shapes(config)
    missing = [name for name in expected if name not in tensors]
    unexpected = [name for name in tensors if name not in expected]
    if missing or unexpected:
        hint = ""
        if any(name.startswith(("synthesis.input.", "synthesis.L0_")) for name in unexpected):
            hint = " (it looks like a StyleGAN3 generator, which is not supported)"
        raise CheckpointError(
            f"{where}: G_ema's tensors do not match a StyleGAN2 generator with its recorded "
            f"settings{hint}: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    for name, shape in expected.items():
        tensor = tensors[name]
        if tuple(tensor.shape) != shape:
            raise CheckpointError(
                f"{where}: G_ema tensor {name} has shape {list(tensor.shape)}, expected "
                f"{list(shape)} from the recorded settings; the file is inconsistent"
            )
        if tensor.dtype != torch.float32:
            raise CheckpointError(
                f"{where}: G_ema tensor {name} is {tensor.dtype}, expected torch.float32; "
                "re-export the pickle with float32 parameters"
            )
    reference = _normalized_filter(_SUPPORTED_FILTER_TAPS)
    for name in expected:
        # The port rebuilds its FIR kernels from [1, 3, 3, 1]; the stored ones must agree.
        if name.endswith(".resample_filter") and not torch.allclose(tensors[name], reference, rtol=0, atol=1e-7):
            raise CheckpointError(
                f"{where}: G_ema buffer {name} is not the [1, 3, 3, 1] filter "
                "outer([1,3,3,1])/64; other resampling filters are not supported"
            )


def _normalized_filter(taps: list[int]) -> torch.Tensor:
    """NVIDIA's separable FIR filter: outer(taps, taps) divided by its sum, float32."""
    vector = torch.tensor(taps, dtype=torch.float32)
    kernel = torch.outer(vector, vector)
    return kernel / kernel.sum()


def _read_conv_clamp(generator: _PersistentRecord, config: _Config, where: str) -> float | None:
    """The clamp the synthesis layers actually apply.

    Each SynthesisLayer/ToRGBLayer stores its own ``conv_clamp`` attribute, which is what its
    forward uses; that is read first because the class default of the keyword differs between
    StyleGAN2-ADA (None) and StyleGAN3's copy of the network (256). The constructor keyword,
    if present, must agree; with neither, ADA's default None applies.
    """
    recorded = set()
    stack = [_children(generator, where).get("synthesis")]
    visited: set[int] = set()
    while stack:
        record = stack.pop()
        if record is None or id(record) in visited:
            continue
        visited.add(id(record))
        if "conv_clamp" in record.state:
            recorded.add(_clamp_value(record.state["conv_clamp"], where))
        stack.extend(_children(record, where).values())
    if len(recorded) > 1:
        raise CheckpointError(
            f"{where}: G_ema's layers disagree on conv_clamp ({sorted(map(str, recorded))}); "
            "such generators are not supported"
        )
    if config.conv_clamp_given:
        if recorded and recorded != {config.conv_clamp}:
            raise CheckpointError(
                f"{where}: G_ema's conv_clamp={config.conv_clamp} disagrees with its "
                f"layers' {recorded.pop()}; the file is inconsistent"
            )
        return config.conv_clamp
    return recorded.pop() if recorded else None


# --------------------------------------------------------------------------------------------
# Renaming to the PyTorch port's layout (ADA README, section 7)
# --------------------------------------------------------------------------------------------


def _to_port_layout(tensors: dict[str, torch.Tensor], config: _Config) -> dict[str, torch.Tensor]:
    """G_ema tensors renamed and reshaped to the port's names, in the port's state_dict order."""
    port: dict[str, torch.Tensor] = {}
    for index in range(config.num_mapping_layers):
        # style.0 is the parameter-free PixelNorm, so the linear layers start at 1.
        port[f"style.{index + 1}.weight"] = tensors[f"mapping.fc{index}.weight"]
        port[f"style.{index + 1}.bias"] = tensors[f"mapping.fc{index}.bias"]
    port["input.input"] = tensors["synthesis.b4.const"].unsqueeze(0)  # [1, C, 4, 4]

    def styled_conv(target: str, source: str) -> None:
        # Same [O, I, 3, 3] layout on both sides, up-convs included: no spatial flip.
        port[f"{target}.conv.weight"] = tensors[f"{source}.weight"].unsqueeze(0)  # [1, O, I, 3, 3]
        port[f"{target}.conv.modulation.weight"] = tensors[f"{source}.affine.weight"]  # holds the +1 init already
        port[f"{target}.conv.modulation.bias"] = tensors[f"{source}.affine.bias"]
        port[f"{target}.noise.weight"] = tensors[f"{source}.noise_strength"].reshape(1)  # [] -> [1]
        port[f"{target}.activate.bias"] = tensors[f"{source}.bias"]

    def to_rgb(target: str, source: str) -> None:
        port[f"{target}.bias"] = tensors[f"{source}.bias"].reshape(1, -1, 1, 1)  # [1, 3, 1, 1]
        port[f"{target}.conv.weight"] = tensors[f"{source}.weight"].unsqueeze(0)  # [1, 3, C, 1, 1]
        port[f"{target}.conv.modulation.weight"] = tensors[f"{source}.affine.weight"]
        port[f"{target}.conv.modulation.bias"] = tensors[f"{source}.affine.bias"]

    styled_conv("conv1", "synthesis.b4.conv1")
    to_rgb("to_rgb1", "synthesis.b4.torgb")
    upper_blocks = config.block_resolutions[1:]
    for block, resolution in enumerate(upper_blocks):
        styled_conv(f"convs.{2 * block}", f"synthesis.b{resolution}.conv0")
        styled_conv(f"convs.{2 * block + 1}", f"synthesis.b{resolution}.conv1")
    for block, resolution in enumerate(upper_blocks):
        to_rgb(f"to_rgbs.{block}", f"synthesis.b{resolution}.torgb")

    # noise_j: j = 0 for b4.conv1, then 2k-5 (conv0) and 2k-4 (conv1) for the block at 2^k.
    port["noises.noise_0"] = tensors["synthesis.b4.conv1.noise_const"].reshape(1, 1, 4, 4)
    for resolution in upper_blocks:
        k = int(math.log2(resolution))
        for layer, index in (("conv0", 2 * k - 5), ("conv1", 2 * k - 4)):
            constant = tensors[f"synthesis.b{resolution}.{layer}.noise_const"]
            port[f"noises.noise_{index}"] = constant.reshape(1, 1, resolution, resolution)
    return port


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _plain(value: Any, where: str) -> Any:
    """Nested dict subclasses (EasyDict, OrderedDict) as plain dicts, lists and tuples kept.

    Bounded in depth and in items visited, so that no crafted nesting recurses or loops long.
    """
    visits = 0

    def copy(item: Any, depth: int) -> Any:
        nonlocal visits
        visits += 1
        if depth > _MAX_SETTING_DEPTH or visits > _MAX_SETTING_ITEMS:
            raise CheckpointError(
                f"{where}: G_ema's constructor arguments are nested deeper or larger than "
                "any network's; the file is corrupt"
            )
        if isinstance(item, dict):
            return {key: copy(entry, depth + 1) for key, entry in item.items()}
        if isinstance(item, list):
            return [copy(entry, depth + 1) for entry in item]
        if isinstance(item, tuple):
            return tuple(copy(entry, depth + 1) for entry in item)
        return item

    return copy(value, 0)


def _printable(value: Any, limit: int = 80) -> str:
    """A value from an untrusted file, safe to put in a one-line message."""
    text = value if isinstance(value, str) else _SHOWN.repr(value)
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    text = "".join(char if char.isprintable() else "?" for char in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shown(value: Any) -> str:
    """``repr`` of a setting from the file, made safe for a one-line message."""
    return _printable(_SHOWN.repr(value))


def _one_line(error: BaseException) -> str:
    """``Type: first line of the message``, shortened, for wrapping an exception in one line."""
    lines = str(error).strip().splitlines()
    return _printable(f"{type(error).__name__}: {lines[0] if lines else ''}", limit=160)
