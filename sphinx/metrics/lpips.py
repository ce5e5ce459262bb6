"""LPIPS (Zhang et al. 2018, "net-lin", version 0.1) without torchvision.

The distance between two images is computed as in the reference ``lpips`` package:

1. scale each image channel-wise, ``(x - shift) / scale`` (the v0.1 ScalingLayer);
2. run an ImageNet trunk (VGG16 or AlexNet ``features``) and keep five ReLU outputs;
3. unit-normalise every feature map over channels, ``f / (sqrt(sum_c f^2) + 1e-10)``;
4. square the difference of the two images' normalised maps;
5. weight channels with a learned non-negative 1x1 convolution to one channel ("lin");
6. average over space and sum over the five layers.

The trunk is a plain ``nn.Sequential`` whose parameter names equal torchvision's
``features.<index>.*``, so the unmodified torchvision ImageNet checkpoints load with strict
key and shape checks. The learned linear weights are the v0.1 files bundled with torchmetrics
(identical to those of the ``lpips`` package).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sphinx.errors import CheckpointError, ConfigError, DownloadError, MissingWeights
from sphinx.utils.batch_invariance import runs_per_sample, samplewise
from sphinx.utils.untrusted_files import load_torch_file

# v0.1 ScalingLayer: maps images in [-1, 1] to roughly ImageNet-normalised inputs.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
# Added to the channel norm, not inside the square root, as in lpips.normalize_tensor.
_NORM_EPS = 1e-10
# VGG16's relu5_3 is 2x2 there; AlexNet's stride-4 stem and two 3x3 pools need 31 pixels.
MIN_SIZE = 32
_ENV_BACKBONE = "SPHINX_LPIPS_BACKBONE"


def _vgg16_features() -> nn.Sequential:
    """torchvision's ``vgg16().features`` up to relu5_3 (the last max-pool has no use here)."""
    layers: list[nn.Module] = []
    in_channels = 3
    widths = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
    for width in widths:
        if width == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(in_channels, int(width), kernel_size=3, padding=1))
        layers.append(nn.ReLU(inplace=True))
        in_channels = int(width)
    return nn.Sequential(*layers)


def _alexnet_features() -> nn.Sequential:
    """torchvision's ``alexnet().features`` up to relu5 (the last max-pool has no use here)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
    )


@dataclass(frozen=True)
class _Trunk:
    """One LPIPS backbone: its layers, the ReLU outputs compared, and where its weights live."""

    build: Callable[[], nn.Sequential]
    taps: tuple[int, ...]  # indices into `features` whose outputs are compared
    channels: tuple[int, ...]  # channels of those outputs, = in_channels of the lin layers
    file_name: str  # torchvision's ImageNet checkpoint; the hex part is a sha256 prefix
    sha256_prefix: str
    url: str


_TRUNKS: dict[str, _Trunk] = {
    # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
    "vgg": _Trunk(
        build=_vgg16_features,
        taps=(3, 8, 15, 22, 29),
        channels=(64, 128, 256, 512, 512),
        file_name="vgg16-397923af.pth",
        sha256_prefix="397923af",
        url="https://download.pytorch.org/models/vgg16-397923af.pth",
    ),
    # relu1 .. relu5
    "alex": _Trunk(
        build=_alexnet_features,
        taps=(1, 4, 7, 9, 11),
        channels=(64, 192, 384, 256, 256),
        file_name="alexnet-owt-7be5be79.pth",
        sha256_prefix="7be5be79",
        url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    ),
}


class LPIPS(nn.Module):
    """Learned perceptual distance (LPIPS v0.1, linear heads), frozen, usable as a loss.

    Parameters never require gradients and the module stays in eval mode, but gradients flow
    to the input images. The trunk runs in the ambient precision (bfloat16 under autocast); the
    normalisation, difference and linear head run in at least float32 so that small distances
    are not rounded away.
    """

    def __init__(
        self,
        net: str = "vgg",
        *,
        backbone_path: str | os.PathLike[str] | None = None,
        pretrained: bool = True,
        lin_path: str | os.PathLike[str] | None = None,
        progress: bool = True,
    ) -> None:
        """Build the network and load its weights.

        Args:
            net: ``"vgg"`` (VGG16, the usual choice for optimisation) or ``"alex"``.
            backbone_path: the torchvision ImageNet checkpoint of the trunk. Without it the
                file is looked up in ``$SPHINX_LPIPS_BACKBONE`` (a file, or a folder holding
                the file under its torchvision name), then in ``torch.hub.get_dir()/checkpoints``,
                and finally downloaded into that folder.
            pretrained: ``False`` keeps a randomly initialised trunk (for tests): the same
                weights every time, drawn without touching the global random state.
            lin_path: a v0.1 linear-weights file (keys ``lin<k>.model.1.weight``); by default
                the copy bundled with torchmetrics, else the one in the ``lpips`` package.
            progress: show a progress bar if the trunk has to be downloaded.

        Raises:
            ConfigError: unknown ``net``, or ``backbone_path`` given with ``pretrained=False``.
            DownloadError: a weights file that is neither found nor downloadable.
            CheckpointError: a weights file with unexpected, missing or misshapen entries.
        """
        super().__init__()
        if net not in _TRUNKS:
            raise ConfigError(f"LPIPS net={net!r} is unknown; choose one of {sorted(_TRUNKS)}")
        if backbone_path is not None and not pretrained:
            raise ConfigError("LPIPS: backbone_path= was given with pretrained=False; drop one of them")
        trunk = _TRUNKS[net]
        self.net = net
        self._taps = frozenset(trunk.taps)
        # A fixed seed on a forked stream: the random trunk is reproducible, and building a loss
        # never shifts the random numbers an experiment draws afterwards.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.features = trunk.build()
            self.lins = nn.ModuleList(nn.Conv2d(channels, 1, kernel_size=1, bias=False) for channels in trunk.channels)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)

        lin_file = Path(lin_path).expanduser() if lin_path is not None else _bundled_lin_file(net)
        _load_lin(self.lins, _read_state(lin_file), source=lin_file)
        if pretrained:
            backbone_file = _locate_backbone(trunk, backbone_path, progress=progress)
            state = _read_state(backbone_file)
            _load_backbone(self.features, state, trunk=trunk, source=backbone_file)

        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> LPIPS:
        """Stay in eval mode: a parent's ``.train()`` must not change a frozen metric."""
        return super().train(False)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """LPIPS distance of each image pair.

        Args:
            x: images ``[B, 3, H, W]`` in [-1, 1], ``H, W >= 32``.
            y: images of the same shape as ``x``.

        Returns:
            ``[B]`` non-negative distances, 0 exactly for identical images; float32 (float64
            when the inputs and module are float64).
        """
        _check_images(x, y)
        # Two passes rather than one concatenated batch: identical images then give bitwise
        # identical features, hence a distance of exactly 0.
        return self.distance(self.embed(x), self.embed(y))

    def embed(self, images: Tensor) -> list[Tensor]:
        """Unit-normalized trunk features of images, to compare with :meth:`distance`.

        Computing a fixed image's features once (an inversion target) and reusing them halves
        the cost of every later distance to it.

        Args:
            images: ``[B, 3, H, W]`` in [-1, 1], ``H, W >= 32``.

        Returns:
            Five tensors ``[B, C_k, h_k, w_k]``.
        """
        _check_images(images, images)
        if runs_per_sample(images):
            # One sample at a time: see sphinx.utils.batch_invariance.samplewise.
            per_sample = [self._trunk_outputs(sample) for sample in images.split(1)]
            trunk = [torch.cat(layer) for layer in zip(*per_sample)]
        else:
            trunk = self._trunk_outputs(images)
        head_dtype = torch.promote_types(trunk[0].dtype, torch.float32)
        with torch.autocast(device_type=images.device.type, enabled=False):
            return [_unit_normalize(f.to(head_dtype)) for f in trunk]

    def distance(self, features_x: list[Tensor], features_y: list[Tensor]) -> Tensor:
        """LPIPS between two outputs of :meth:`embed`, ``[B]``."""
        total: Tensor | None = None
        with torch.autocast(device_type=features_x[0].device.type, enabled=False):
            for nx, ny, lin in zip(features_x, features_y, self.lins):
                weight = lin.weight.to(nx.dtype)
                weighted = samplewise(functools.partial(F.conv2d, weight=weight), (nx - ny) ** 2)  # [B, 1, h, w]
                layer = weighted.mean(dim=(2, 3), keepdim=True)  # [B, 1, 1, 1]
                total = layer if total is None else total + layer
        assert total is not None
        return total.reshape(features_x[0].shape[0])  # [B]

    def _trunk_outputs(self, images: Tensor) -> list[Tensor]:
        """The five compared ReLU outputs of the scaled images, in order."""
        h = ((images - self.shift) / self.scale).to(self.features[0].weight.dtype)
        outputs = []
        for index, layer in enumerate(self.features):
            h = layer(h)
            if index in self._taps:
                outputs.append(h)
        return outputs

    def extra_repr(self) -> str:
        return f"net={self.net!r}"


def _unit_normalize(features: Tensor) -> Tensor:
    """Divide each spatial position's feature vector by its L2 norm over channels."""
    norm = torch.sqrt(torch.sum(features**2, dim=1, keepdim=True))  # [B, 1, H, W]
    return features / (norm + _NORM_EPS)


def _check_images(x: Tensor, y: Tensor) -> None:
    for name, images in (("x", x), ("y", y)):
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"LPIPS expects images [B, 3, H, W]; got {name} of shape {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(f"LPIPS expects float images in [-1, 1]; got {name} of dtype {images.dtype}")
    if x.shape != y.shape:
        raise ValueError(f"LPIPS compares images of one shape; got {tuple(x.shape)} and {tuple(y.shape)}")
    if min(x.shape[2], x.shape[3]) < MIN_SIZE:
        raise ValueError(f"LPIPS needs images of at least {MIN_SIZE}x{MIN_SIZE} pixels; got {tuple(x.shape)}")


def _bundled_lin_file(net: str) -> Path:
    """The v0.1 linear weights shipped with torchmetrics, else with the ``lpips`` package."""
    # find_spec locates a top-level package without importing it: importing lpips pulls
    # torchvision, and importing torchmetrics is slow.
    candidates = []
    for package, relative in (
        ("torchmetrics", Path("functional", "image", "lpips_models", f"{net}.pth")),
        ("lpips", Path("weights", "v0.1", f"{net}.pth")),
    ):
        spec = importlib.util.find_spec(package)
        for root in (spec.submodule_search_locations or []) if spec is not None else []:
            candidates.append(Path(root) / relative)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates) or "no torchmetrics or lpips installation"
    raise DownloadError(
        f"LPIPS linear weights {net}.pth not found (searched {searched}); reinstall torchmetrics, "
        "pass lin_path=, or run with lpips_weight=0 to go without LPIPS"
    )


def _locate_backbone(trunk: _Trunk, backbone_path: str | os.PathLike[str] | None, *, progress: bool) -> Path:
    """The trunk checkpoint: given path, else env variable, else hub cache, else a download."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    advice = (
        f"put {trunk.file_name} (from {trunk.url}) in {folder}, or point {_ENV_BACKBONE} at it, "
        "or run with lpips_weight=0 to go without LPIPS"
    )
    if backbone_path is not None:
        path = Path(backbone_path).expanduser()
        if not path.is_file():
            raise MissingWeights(f"LPIPS backbone_path {path} is not a file", advice)
        return path
    configured = os.environ.get(_ENV_BACKBONE)
    if configured:
        path = Path(configured).expanduser()
        if path.is_dir():
            path = path / trunk.file_name
        if not path.is_file():
            raise MissingWeights(f"LPIPS backbone {path} (from {_ENV_BACKBONE}) is not a file", advice)
        return path
    cached = folder / trunk.file_name
    if cached.is_file():
        return cached

    from sphinx.utils.download import download, file_sha256  # lazy: only needed when nothing is cached

    try:
        path = download(trunk.url, cache_dir=folder, filename=trunk.file_name, progress=progress)
    except DownloadError as err:
        # The download's own message (in the chain) repeats where to put the file; said once here.
        raise MissingWeights(
            f"LPIPS backbone {trunk.file_name} is not in {folder} and could not be downloaded from {trunk.url}", advice
        ) from err
    digest = file_sha256(path)
    if not digest.startswith(trunk.sha256_prefix):
        # Removed so that the next run does not pick the bad file up from the cache.
        path.unlink(missing_ok=True)
        raise MissingWeights(
            f"downloaded {path} has sha256 {digest[:16]}..., expected {trunk.sha256_prefix}...; removed it", advice
        )
    return path


def _read_state(path: Path) -> Mapping[str, Tensor]:
    """A flat ``{name: tensor}`` file, read without unpickling arbitrary objects."""
    if not path.is_file():
        raise DownloadError(
            f"LPIPS weights file {path} does not exist; pass an existing file, "
            "or run with lpips_weight=0 to go without LPIPS"
        )
    state = load_torch_file(path, what="LPIPS weights file", remedy="download it again")
    if not isinstance(state, Mapping) or not all(
        isinstance(key, str) and isinstance(value, Tensor) for key, value in state.items()
    ):
        raise CheckpointError(f"{path} does not hold a flat state dict of tensors; LPIPS cannot use it")
    return state


def _listing(names: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _load_backbone(features: nn.Sequential, state: Mapping[str, Tensor], *, trunk: _Trunk, source: Path) -> None:
    """Copy torchvision ``features.*`` tensors into ``features``; refuse anything unexpected.

    ``classifier.*`` entries are the only ones ignored: the ImageNet files carry the classifier
    head, which LPIPS does not use.
    """
    expected = features.state_dict()  # keys "0.weight", "0.bias", ...
    received = {key.removeprefix("features."): value for key, value in state.items() if key.startswith("features.")}
    unknown = sorted(key for key in state if not key.startswith(("features.", "classifier.")))
    missing = [f"features.{key}" for key in expected if key not in received]
    unexpected = sorted(f"features.{key}" for key in received if key not in expected)
    misshapen = [
        f"features.{key} {tuple(value.shape)} instead of {tuple(expected[key].shape)}"
        for key, value in received.items()
        if key in expected and (value.shape != expected[key].shape or not value.is_floating_point())
    ]
    problems = []
    for label, names in (
        ("missing", missing),
        ("wrong shape or dtype", misshapen),
        ("unexpected", unexpected),
        ("unknown", unknown),
    ):
        if names:
            problems.append(f"{label}: {_listing(names)}")
    if problems:
        raise CheckpointError(
            f"{source} is not torchvision's {trunk.file_name} ({'; '.join(problems)}); "
            f"use the file from {trunk.url}, or run with lpips_weight=0"
        )
    features.load_state_dict(received, strict=True)


def _load_lin(lins: nn.ModuleList, state: Mapping[str, Tensor], *, source: Path) -> None:
    """Copy the reference ``lin<k>.model.1.weight`` tensors into ``lins[k].weight``."""
    # model.0 is the Dropout of the reference NetLinLayer, model.1 its 1x1 convolution.
    names = [f"lin{k}.model.1.weight" for k in range(len(lins))]
    problems = []
    if sorted(state) != sorted(names):
        problems.append(f"keys {_listing(sorted(state))}, expected {_listing(names, limit=5)}")
    else:
        for name, lin in zip(names, lins):
            value = state[name]
            if value.shape != lin.weight.shape or not value.is_floating_point():
                problems.append(f"{name} {tuple(value.shape)} instead of {tuple(lin.weight.shape)}")
            elif not bool(torch.all(value >= 0)):
                problems.append(f"{name} has negative weights")
    if problems:
        raise CheckpointError(f"{source} is not an LPIPS v0.1 linear-weights file ({'; '.join(problems)})")
    with torch.no_grad():
        for name, lin in zip(names, lins):
            lin.weight.copy_(state[name])
