"""Loading generator checkpoints of any published format into :class:`Generator`.

Formats: the PyTorch port's ``{"g_ema": state_dict, "latent_avg": ...}`` files (or a bare state
dict), and NVIDIA's StyleGAN2-ADA network pickles. The architecture is inferred from the tensors.
Loading never executes code from the file: ``.pt`` files go through ``torch.load(weights_only=True)``
and pickles through an allowlist unpickler, both after the bounds of
:mod:`sphinx.utils.untrusted_files` (no hash bombs, no tensors spanning more than the file holds).
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from sphinx.errors import CheckpointError
from sphinx.generators.ops import fir_kernel
from sphinx.generators.stylegan2 import MAX_RESOLUTION, Generator
from sphinx.utils.untrusted_files import load_torch_file, require_regular_file

log = logging.getLogger(__name__)

TORCH_SUFFIXES = {".pt", ".pth", ".ckpt"}
PICKLE_SUFFIXES = {".pkl", ".pickle"}
# Buffers that real checkpoints are known to lack: the port's own 256 px FFHQ file predates the
# noise buffers, and some redistributed config-f files were saved without the FIR kernels.
_TOLERATED_MISSING = re.compile(r"^(noises\.noise_\d+|.*\.kernel)$")
_NOISE_FILL_SEED = 0
# The buffers filled in for a file must not dwarf what the file itself holds (a few KB declaring a
# huge generator would otherwise allocate gigabytes of noise maps).
_MAX_FILLED_BYTES_RATIO = 1.0
_MAX_FILLED_BYTES_FLOOR = 64 * 2**20


def load_generator(
    source: str | os.PathLike,
    *,
    output_resolution: int | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> Generator:
    """Load a frozen StyleGAN2 generator from a file, URL or preset name.

    Args:
        source: a ``.pt``/``.pth`` file of the PyTorch port (or a bare state dict), a ``.pkl``
            NVIDIA network pickle, an http(s)/file URL, or a preset name (see
            :data:`sphinx.generators.presets.PRESETS`).
        output_resolution: render at this lower power-of-two resolution by running only the
            first blocks and taking their skip-RGB output (what the SPHInX authors' code does
            with the FFHQ-1024 weights at 256 px); None keeps the checkpoint's resolution.
        device: where to put the generator.
        progress: show a progress bar if the file must be downloaded.

    Returns:
        The generator in eval mode with ``requires_grad`` off, ``latent_avg`` set when the file
        has one.

    Raises:
        CheckpointError: not a generator checkpoint, corrupt, unsafe, unsupported, or the
            requested resolution is not available.
    """
    from sphinx.generators.presets import resolve_checkpoint

    path = require_regular_file(resolve_checkpoint(source, progress=progress), what="generator checkpoint")
    state_dict, latent_avg, options = _read_checkpoint(path)
    config = infer_config(state_dict, path=path)
    config.update(options)
    generator = _build_and_load(state_dict, config, path=path, output_resolution=output_resolution)
    if latent_avg is not None:
        if latent_avg.numel() != generator.style_dim:
            raise CheckpointError(
                f"{path}: latent_avg has {latent_avg.numel()} values, the generator's "
                f"style_dim is {generator.style_dim}; the file is inconsistent"
            )
        generator.latent_avg = latent_avg.detach().float().reshape(generator.style_dim).clone()
    generator.eval().requires_grad_(False)
    log.info("loaded %s: %s", path.name, describe(generator))
    return generator.to(device)


def describe(generator: Generator) -> str:
    """One line naming an architecture: resolution, widths, depth, W+ rows and channel table."""
    channels = ",".join(f"{r}:{c}" for r, c in generator.channels.items())
    clamp = f", conv_clamp {generator.conv_clamp:g}" if generator.conv_clamp is not None else ""
    return (
        f"{generator.resolution} px, style_dim {generator.style_dim}, {generator.n_mlp} mapping layers, "
        f"n_latent {generator.n_latent}, channels {{{channels}}}{clamp}"
    )


def infer_config(state_dict: Mapping[str, torch.Tensor], *, path: Path | None = None) -> dict:
    """Infer Generator constructor keywords from a port-format state dict.

    Returns:
        ``{"resolution", "style_dim", "n_mlp", "channels"}``.
    """
    where = f"{path}: " if path is not None else ""
    try:
        mapping_layers = sorted(
            int(m.group(1)) for key in state_dict if (m := re.fullmatch(r"style\.(\d+)\.weight", key))
        )
        style_dim = int(state_dict["style.1.weight"].shape[1])
        channels = {4: int(state_dict["input.input"].shape[1])}
        blocks = sorted(
            int(m.group(1)) for key in state_dict if (m := re.fullmatch(r"to_rgbs\.(\d+)\.conv\.weight", key))
        )
        for block in blocks:
            channels[2 ** (block + 3)] = int(state_dict[f"convs.{2 * block}.conv.weight"].shape[1])
    except (KeyError, IndexError) as missing:
        raise CheckpointError(
            f"{where}not a StyleGAN2 generator state dict (no {missing}); expected "
            "the PyTorch port's g_ema keys (style.*, input.input, conv1.*, convs.*, to_rgbs.*)"
        ) from None
    if mapping_layers != list(range(1, len(mapping_layers) + 1)):
        raise CheckpointError(f"{where}mapping layers are not numbered 1..n: {mapping_layers}")
    if blocks != list(range(len(blocks))):
        raise CheckpointError(f"{where}synthesis blocks are not numbered 0..n: {blocks}")
    if 4 * 2 ** len(blocks) > MAX_RESOLUTION:
        raise CheckpointError(
            f"{where}declares a {4 * 2 ** len(blocks)} px generator, above the "
            f"{MAX_RESOLUTION} px this loader accepts; the file is corrupt or not a StyleGAN2"
        )
    return {
        "resolution": 4 * 2 ** len(blocks),
        "style_dim": style_dim,
        "n_mlp": len(mapping_layers),
        "channels": channels,
    }


def _read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], torch.Tensor | None, dict]:
    """Return (port-format state dict, latent_avg or None, extra constructor keywords)."""
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        from sphinx.generators.nvidia_pickle import read_nvidia_pickle

        contents = read_nvidia_pickle(path)
        return (
            dict(contents.state_dict),
            contents.latent_avg,
            {"conv_clamp": contents.conv_clamp, "lr_mlp": contents.lr_mlp},
        )
    if suffix not in TORCH_SUFFIXES and not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path}: unknown checkpoint format '{suffix}'; use a .pt/.pth file of the "
            "PyTorch port of StyleGAN2 or an NVIDIA .pkl network pickle"
        )
    payload = _torch_load(path)
    if isinstance(payload, Mapping) and "g_ema" in payload:
        state_dict, latent_avg = payload["g_ema"], payload.get("latent_avg")
    elif isinstance(payload, Mapping) and "style.1.weight" in payload:
        state_dict, latent_avg = payload, None
    else:
        found = sorted(payload)[:8] if isinstance(payload, Mapping) else type(payload).__name__
        raise CheckpointError(
            f"{path}: not a generator checkpoint (found {found}); expected a dict with "
            "'g_ema' or a bare generator state dict"
        )
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(f"{path}: 'g_ema' is not a state dict of tensors")
    if not all(isinstance(key, str) for key in state_dict):
        raise CheckpointError(f"{path}: 'g_ema' has keys that are not strings; not a generator state dict")
    if latent_avg is not None and not isinstance(latent_avg, torch.Tensor):
        raise CheckpointError(f"{path}: 'latent_avg' is not a tensor")
    return dict(state_dict), latent_avg, {}


def _torch_load(path: Path) -> object:
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as stream:
            # A cut-off archive still starts with "PK"; legacy torch files start with a pickle PROTO opcode.
            if not stream.read(2).startswith((b"\x80", b"PK")):
                raise CheckpointError(
                    f"{path}: not a torch checkpoint (neither a torch.save archive nor a "
                    "legacy torch file); give a .pt file written by torch.save"
                )
    return load_torch_file(path, what="generator checkpoint", remedy="download it again")


def _build_and_load(
    state_dict: dict[str, torch.Tensor], config: dict, *, path: Path, output_resolution: int | None
) -> Generator:
    full_resolution = config["resolution"]
    with torch.device("meta"):
        reference = Generator(**config)
    expected = reference.state_dict()
    _check_keys(state_dict, expected, path=path)
    _check_kernels(state_dict, reference, path=path)
    _check_filled_size(state_dict, expected, path=path)

    resolution = full_resolution if output_resolution is None else int(output_resolution)
    if resolution > full_resolution or resolution < 4 or resolution & (resolution - 1):
        raise CheckpointError(
            f"{path}: cannot render at {output_resolution} px; this {full_resolution} px "
            f"checkpoint gives any power of two from 4 to {full_resolution}"
        )
    config = dict(
        config, resolution=resolution, channels={r: c for r, c in config["channels"].items() if r <= resolution}
    )
    generator = Generator(**config)
    target = generator.state_dict()
    filled = _fill_missing_buffers(state_dict, target, path=path)
    try:
        generator.load_state_dict({key: filled[key] for key in target}, strict=True)
    except RuntimeError as mismatch:
        first = str(mismatch).splitlines()[1].strip() if "\n" in str(mismatch) else str(mismatch)
        raise CheckpointError(f"{path}: tensor shapes do not fit the inferred architecture ({first})") from None
    if resolution < full_resolution:
        log.info(
            "%s: rendering the %d px skip-RGB output of a %d px checkpoint", path.name, resolution, full_resolution
        )
    return generator


def _check_keys(state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], *, path: Path) -> None:
    unexpected = sorted(set(state_dict) - set(expected))
    missing = sorted(key for key in set(expected) - set(state_dict) if not _TOLERATED_MISSING.match(key))
    if unexpected or missing:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} parameters (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (e.g. {', '.join(unexpected[:3])})")
        raise CheckpointError(f"{path}: not a StyleGAN2 'skip' generator of the supported layout: {'; '.join(parts)}")
    for key, tensor in state_dict.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"{path}: tensor {key} has shape {list(tensor.shape)}, the inferred "
                f"architecture needs {list(expected[key].shape)}"
            )


def _check_kernels(state_dict: Mapping[str, torch.Tensor], reference: Generator, *, path: Path) -> None:
    standard = fir_kernel(reference.blur_taps, gain=4)
    for key, tensor in state_dict.items():
        if key.endswith(".kernel") and not torch.allclose(tensor.float(), standard, atol=1e-6):
            raise CheckpointError(
                f"{path}: {key} is not the standard [1,3,3,1] FIR kernel; other resampling filters are not supported"
            )


def _check_filled_size(
    state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], *, path: Path
) -> None:
    """Refuse before allocating when the buffers to fill in would dwarf the file's own tensors."""
    held = sum(t.numel() * t.element_size() for t in state_dict.values())
    filled = sum(t.numel() * t.element_size() for key, t in expected.items() if key not in state_dict)
    if filled > max(_MAX_FILLED_BYTES_RATIO * held, _MAX_FILLED_BYTES_FLOOR):
        raise CheckpointError(
            f"{path}: lacks {filled / 2**20:.0f} MiB of noise buffers for only "
            f"{held / 2**20:.1f} MiB of weights; refused before allocating them"
        )


def _fill_missing_buffers(
    state_dict: dict[str, torch.Tensor], target: Mapping[str, torch.Tensor], *, path: Path
) -> dict[str, torch.Tensor]:
    filled = dict(state_dict)
    missing = [key for key in target if key not in state_dict]
    if not missing:
        return filled
    draw = torch.Generator().manual_seed(_NOISE_FILL_SEED)
    for key in missing:
        if key.startswith("noises."):
            # Seeded, so that "stored noise" renders stay reproducible across loads.
            filled[key] = torch.randn(target[key].shape, generator=draw)
        else:
            filled[key] = target[key]  # FIR kernels are rebuilt from the standard taps.
    kinds = sorted({"noise maps" if key.startswith("noises.") else "FIR kernels" for key in missing})
    log.warning(
        "%s lacks %s (%d buffers), as some published files do; filled them in (noise maps drawn N(0,1) with seed %d)",
        path.name,
        " and ".join(kinds),
        len(missing),
        _NOISE_FILL_SEED,
    )
    return filled
