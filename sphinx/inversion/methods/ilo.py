"""ILO: Intermediate Layer Optimization (Daras et al., ICML 2021). Facts in shared METHODS.md.

Round k optimizes, through the generator's blocks from block k on: the latent z (every W+ row,
mapped to W by PULSE's Gaussian-fit proxy instead of the mapping network), the noise maps of
layers 0 .. 4 + 2k, and, for k >= 1, the feature map that enters block k, started at what the
previous round's solution makes there. After every Adam step z (row by row) and each optimized
noise map are scaled back to their norms at the start of the round (spherical projection); the
source's l1-ball projections of the change since the previous round are options, off as in the
source. The loss is MSE + LPIPS + geocross (round 0 only, as the source's batch-dim slice leaves
it); the reported image is the lowest-MSE one seen over all steps and rounds, not the last.

Blocks: block 0 is the 4x4 conv and its ToRGB; block j >= 1 the j-th up-sampling block. As in the
source, a round that starts at block k >= 1 adds up RGB from block k on (its ``skip=None``): the
earlier blocks' RGB is not carried.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sphinx.errors import ConfigError
from sphinx.generators.stylegan2 import Generator
from sphinx.inversion.methods.base import Method, MethodConfig, ParamGroup, Stage
from sphinx.inversion.objective import ReconstructionLoss
from sphinx.utils.seeding import per_image_randn

PROXY_SLOPE = 0.2  # the mapping network's last LeakyReLU, which the proxy keeps
PROXY_SEED = 123  # seeds the draws of the Gaussian fit, like the other methods' w statistics
_GAUSSIAN_FITS: weakref.WeakKeyDictionary[Generator, dict] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, kw_only=True)
class ILOConfig(MethodConfig):
    """ILO hyperparameters (the source's configs/config.yaml).

    Attributes:
        rounds: Adam steps of each round; round k starts at block k ((50, 50, 25, 25)).
        lr: Adam learning rate of every round (0.1).
        rampup, rampdown: the cosine ramps of each round (0.05, 0.75).
        lpips_weight, mse_weight: loss weights (1, 1).
        geocross_weight: weight of the geodesic spread of z's rows (0.01; round 0, see module doc).
        project_balls: project the change since the previous round onto l1 balls (off).
        feature_radii, noise_radii, latent_radii: the balls' radii for rounds 1, 2, 3, ...
            (the last repeats), for the entering feature map, the noise maps and z.
        fit_samples: z draws for the Gaussian fit of the proxy (PULSE used 10^6).
    """

    name: str = "ilo"
    rounds: tuple[int, ...] = (50, 50, 25, 25)
    lr: float = 0.1
    rampup: float = 0.05
    rampdown: float = 0.75
    lpips_weight: float = 1.0
    mse_weight: float = 1.0
    geocross_weight: float = 0.01
    project_balls: bool = False
    feature_radii: tuple[float, ...] = (1000.0, 1000.0, 6000.0)
    noise_radii: tuple[float, ...] = (1000.0, 1000.0, 6000.0)
    latent_radii: tuple[float, ...] = (100.0, 1000.0, 6000.0)
    fit_samples: int = 100_000

    def complete(self) -> None:
        for key, kind in (("rounds", int), ("feature_radii", float), ("noise_radii", float), ("latent_radii", float)):
            values = getattr(self, key)
            if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
                raise ConfigError(f"method.{key} must be a list of numbers, got {values!r}")
            if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
                raise ConfigError(f"method.{key} must be a list of numbers, got {list(values)}")
            object.__setattr__(self, key, tuple(kind(v) for v in values))

    def check(self) -> None:
        if not self.rounds or any(steps < 0 for steps in self.rounds):
            raise ConfigError(f"method.rounds must be one or more non-negative step counts, got {list(self.rounds)}")
        for key in ("feature_radii", "noise_radii", "latent_radii"):
            if not getattr(self, key) or any(not r > 0 for r in getattr(self, key)):
                raise ConfigError(f"method.{key} must be positive radii, got {list(getattr(self, key))}")
        if self.fit_samples < 2:
            raise ConfigError(f"method.fit_samples must be at least 2, got {self.fit_samples}")

    @property
    def implementation(self) -> type[IntermediateLayers]:
        return IntermediateLayers

    def step_counts(self) -> dict[str, int]:
        return {"steps": sum(self.rounds)}


@torch.no_grad()
def gaussian_fit(generator: Generator, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std ``[style_dim]`` of the mapping's output before its last LeakyReLU.

    LeakyReLU is positively homogeneous, so undoing it with slope 1/0.2 recovers the
    pre-activation up to the layer's constant gain, which the proxy's LeakyReLU then restores:
    ``LeakyReLU(fit mean)`` lies where mapping(z) does. Remembered per generator.
    """
    cache = _GAUSSIAN_FITS.setdefault(generator, {})
    if samples not in cache:
        draw = torch.Generator().manual_seed(PROXY_SEED)
        z = torch.randn(samples, generator.style_dim, generator=draw).to(generator.input.input.device)
        w = torch.cat([generator.mapping(chunk) for chunk in z.split(4096)])
        pre = F.leaky_relu(w, 1 / PROXY_SLOPE)
        cache[samples] = (pre.mean(dim=0), pre.std(dim=0))
    return cache[samples]


def block_count(generator: Generator) -> int:
    """Blocks of the synthesis network: the 4x4 block and one per up-sampling."""
    return len(generator.to_rgbs) + 1


def render_from(
    generator: Generator, block: int, features: torch.Tensor | None, ws: torch.Tensor, noise: Sequence[torch.Tensor]
) -> torch.Tensor:
    """The synthesis network from ``block`` on, RGB added up from there (the source's skip=None).

    Args:
        generator: the generator.
        block: where to start; 0 is the whole network (from the learned 4x4 constant).
        features: what enters ``block`` (``[B, C, r, r]``), ignored for block 0.
        ws: W+ rows ``[B, n_latent, style_dim]``.
        noise: every layer's map, ``[B or 1, 1, r, r]`` each.

    Returns:
        Images ``[B, 3, R, R]``.
    """
    x, rgb = run_blocks(generator, block, block_count(generator), features, ws, noise)
    return rgb


def run_blocks(
    generator: Generator, start: int, stop: int, features: torch.Tensor | None, ws: torch.Tensor, noise
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blocks ``start .. stop - 1``: the features leaving the last and the RGB added up since ``start``."""
    clamp, rgb = generator.conv_clamp, None
    x = features
    for block in range(start, stop):
        if block == 0:
            x = generator.input.input.expand(ws.shape[0], -1, -1, -1)
            x = generator.conv1(x, ws[:, 0], noise[0], clamp=clamp)
            rgb = generator.to_rgb1(x, ws[:, 1], clamp=clamp)
            continue
        row = 2 * block - 1  # the rows of Generator.synthesis: up-conv, conv, then ToRGB
        x = generator.convs[2 * block - 2](x, ws[:, row], noise[row], clamp=clamp)
        x = generator.convs[2 * block - 1](x, ws[:, row + 1], noise[row + 1], clamp=clamp)
        rgb = generator.to_rgbs[block - 1](x, ws[:, row + 2], rgb, clamp=clamp)
    return x, rgb


def geocross(z: torch.Tensor) -> torch.Tensor:
    """PULSE's geodesic cross loss of z's rows, per image: small when the rows agree.

    Args:
        z: ``[B, n_latent, style_dim]``.

    Returns:
        ``[B]``.
    """
    x, y = z[:, None], z[:, :, None]  # [B, 1, L, d], [B, L, 1, d]
    a = ((x - y).square().sum(dim=-1) + 1e-9).sqrt()
    b = ((x + y).square().sum(dim=-1) + 1e-9).sqrt()
    distance = 2 * torch.atan(a / b)  # [B, L, L]
    return (distance.square() * z.shape[-1]).mean(dim=(1, 2)) / 8


@torch.no_grad()
def project_l1_ball(deviation: torch.Tensor, radius: float) -> torch.Tensor:
    """Each image's ``deviation`` (first axis) projected onto the l1 ball of ``radius`` (Duchi et al. 2008)."""
    flat = deviation.flatten(1)
    inside = flat.abs().sum(dim=1) <= radius
    magnitude = flat.abs().sort(dim=1, descending=True).values
    cumulative = magnitude.cumsum(dim=1) - radius
    index = torch.arange(1, flat.shape[1] + 1, device=flat.device, dtype=flat.dtype)
    rho = ((magnitude - cumulative / index) > 0).sum(dim=1, keepdim=True) - 1  # last index that stays positive
    threshold = cumulative.gather(1, rho.clamp(min=0)) / (rho + 1).to(flat.dtype)
    projected = flat.sign() * (flat.abs() - threshold).clamp(min=0)
    return torch.where(inside[:, None], flat, projected).view_as(deviation)


class _BestSoFar:
    """Each image's lowest-MSE render so far and what re-renders it: a record the loop checkpoints."""

    def __init__(self, method: IntermediateLayers) -> None:
        self.method = method
        batch = len(method.ids)
        self.mse = torch.full((batch,), float("inf"), device=method.device)
        self.block = torch.zeros(batch, dtype=torch.long, device=method.device)
        self.z = method.z.detach().clone()
        self.noise = [m.detach().clone() for m in method.noise]
        self.features = [f.detach().clone() for f in method.features]

    @torch.no_grad()
    def observe(self, mse: torch.Tensor, block: int) -> None:
        """Keep this step's parameters for the images whose MSE is the lowest yet."""
        better = torch.isfinite(mse) & (mse < self.mse)
        rows = better[:, None, None]
        self.mse = torch.where(better, mse, self.mse)
        self.block = torch.where(better, torch.full_like(self.block, block), self.block)
        self.z = torch.where(rows, self.method.z, self.z)
        self.noise = [torch.where(better[:, None, None, None], m, b) for m, b in zip(self.method.noise, self.noise)]
        if block >= 1:
            current = self.method.features[block - 1]
            self.features[block - 1] = torch.where(better[:, None, None, None], current, self.features[block - 1])

    def records(self) -> dict:
        return {"ilo.best": [self.mse, self.block, self.z, *self.noise, *self.features]}

    def restore(self, records: dict) -> None:
        if "ilo.best" not in records:
            return
        values = [t.to(self.method.device) for t in records["ilo.best"]]
        noise_count = len(self.noise)
        self.mse, self.block, self.z = values[:3]
        self.noise, self.features = values[3 : 3 + noise_count], values[3 + noise_count :]

    def discard_after(self, step: int) -> None:
        """Nothing to do: ILO has no early stop, the only late stop (every image failed) ends the batch."""


class _TracksBest:
    """The reconstruction loss, telling the best-so-far record each step's MSE."""

    def __init__(self, loss: ReconstructionLoss, method: IntermediateLayers) -> None:
        self.loss, self.method = loss, method
        self.lpips, self.perceptual = loss.lpips, loss.perceptual

    def __call__(self, images: torch.Tensor, *, step: int, with_lpips: bool = True) -> dict[str, torch.Tensor]:
        terms = self.loss(images, step=step, with_lpips=with_lpips)
        self.method.best.observe(terms["mse"].detach(), self.method.block)
        return terms


class IntermediateLayers(Method):
    """ILO's rounds over successive intermediate layers; see the module docstring."""

    def __init__(self, generator: Generator, ids, config: ILOConfig, *, seed: int) -> None:
        super().__init__(generator, ids, config, seed=seed)
        blocks = block_count(generator)
        if len(config.rounds) > blocks:
            raise ConfigError(
                f"method.rounds has {len(config.rounds)} rounds, but this {generator.resolution} px generator "
                f"has {blocks} blocks to start them at"
            )
        self.mean, self.std = gaussian_fit(generator, config.fit_samples)
        shape = (generator.n_latent, generator.style_dim)
        self.z = per_image_randn(shape, self.ids, seed, "ilo_z", device=self.device).requires_grad_()
        self.noise = [
            per_image_randn((1, side, side), self.ids, seed, "noise", layer, device=self.device).requires_grad_()
            for layer, side in enumerate(generator.noise_resolutions)
        ]
        # The map entering block k of round k >= 1: [B, C, r, r], set at the start of its round.
        self.features = []
        for block in range(1, len(config.rounds)):
            side = 4 * 2 ** (block - 1)
            channels = generator.channels[side]
            self.features.append(torch.zeros(len(self.ids), channels, side, side, device=self.device).requires_grad_())
        self.block = 0
        self.best = _BestSoFar(self)
        self._stages: list[Stage] = []
        self._radii: dict[int, torch.Tensor] = {}
        self._anchors: dict = {}
        self._restored: dict = {}  # the records of a resumed batch, until its round is entered

    def ws(self) -> torch.Tensor:
        """The proxy's W+ rows ``[B, n_latent, style_dim]``: LeakyReLU(std * z + mean)."""
        return F.leaky_relu(self.z * self.std + self.mean, PROXY_SLOPE)

    def optimized_noise(self, block: int) -> list[torch.Tensor]:
        """Round ``block``'s noise maps: layers 0 .. 4 + 2 * block."""
        return self.noise[: 5 + 2 * block]

    def stages(self) -> list[Stage]:
        if self._stages:  # built once: render tells the rounds apart by these very objects
            return self._stages
        c = self.config
        for block, steps in enumerate(c.rounds):
            params = (self.z, *self.optimized_noise(block), *([self.features[block - 1]] if block else []))
            self._stages.append(
                Stage(
                    f"round {block}",
                    steps,
                    (ParamGroup(params, c.lr, scheduled=True),),
                    lpips_weight=c.lpips_weight,
                    mse_weight=c.mse_weight,
                    rampup=c.rampup,
                    rampdown=c.rampdown,
                )
            )
        return self._stages

    def loop_records(self) -> list:
        return [self.best, self]

    def records(self) -> dict:
        """The round in flight's projection norms and balls' centres: a resumed round projects
        onto the very same ones (norms read back from projected values differ in the last bit)."""
        if not self._radii:
            return {}
        saved = {"ilo.radii": [self._radii[id(t)] for t in self._projected(self.block)]}
        if self.config.project_balls and self.block >= 1:  # the balls act from round 1 on
            saved["ilo.anchors"] = [self._anchors["z"], *self._anchors["noise"], self._anchors["features"]]
        return saved

    def restore(self, records: dict) -> None:
        self._restored = records

    def discard_after(self, step: int) -> None:
        """Nothing to do, as for :class:`_BestSoFar`."""

    def objective(self, operator, observation: torch.Tensor, *, lpips, use_lpips: bool) -> _TracksBest:
        return _TracksBest(ReconstructionLoss(operator, observation, lpips=lpips, use_lpips=use_lpips), self)

    def render(self, stage: Stage, step: int, progress: float) -> torch.Tensor:
        block = next(index for index, known in enumerate(self._stages) if known is stage)
        if block != self.block or not self._radii:
            self._enter_round(block, fresh=progress == 0)
        features = self.features[block - 1] if block else None
        return render_from(self.generator, block, features, self.ws(), self.noise)

    @torch.no_grad()
    def _enter_round(self, block: int, *, fresh: bool) -> None:
        """Start round ``block``: its entering features from the previous round's solution (unless
        restored mid-round), the norms the spherical projection keeps, and the balls' centres."""
        if fresh and block >= 1:
            previous = self.features[block - 2] if block >= 2 else None
            entering, _ = run_blocks(self.generator, block - 1, block, previous, self.ws(), self.noise)
            self.features[block - 1].copy_(entering)
        self.block = block
        projected = self._projected(block)
        restored, self._restored = self._restored, {}
        if not fresh and "ilo.radii" in restored:  # a round resumed where it was stopped
            self._radii = {id(t): r.to(self.device) for t, r in zip(projected, restored["ilo.radii"])}
        else:
            self._radii = {id(t): t.flatten(2 if t is self.z else 1).norm(dim=-1) for t in projected}
        if not fresh and "ilo.anchors" in restored:
            anchors = [t.to(self.device) for t in restored["ilo.anchors"]]
            self._anchors = {"z": anchors[0], "noise": anchors[1:-1], "features": anchors[-1]}
            return
        self._anchors = {"z": self.z.clone(), "noise": [m.clone() for m in self.optimized_noise(block)]}
        if block >= 1:
            self._anchors["features"] = self.features[block - 1].clone()

    def _projected(self, block: int) -> list[torch.Tensor]:
        return [self.z, *self.optimized_noise(block)]

    def regularization(self, stage: Stage, step: int, perceptual) -> dict[str, torch.Tensor]:
        if self.block != 0 or self.config.geocross_weight == 0:
            return {}
        return {"geocross": self.config.geocross_weight * geocross(self.z)}

    @torch.no_grad()
    def after_step(self, stage: Stage) -> None:
        block, c = self.block, self.config
        if c.project_balls and block >= 1:
            radius = lambda radii: radii[min(block - 1, len(radii) - 1)]
            anchors = self._anchors
            self.z.copy_(anchors["z"] + project_l1_ball(self.z - anchors["z"], radius(c.latent_radii)))
            for current, anchor in zip(self.optimized_noise(block), anchors["noise"]):
                current.copy_(anchor + project_l1_ball(current - anchor, radius(c.noise_radii)))
            entering = self.features[block - 1]
            entering.copy_(
                anchors["features"] + project_l1_ball(entering - anchors["features"], radius(c.feature_radii))
            )
        # spherical projection: z row by row, each noise map whole, back to their round-start norms
        z_norm = self.z.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        self.z.mul_(self._radii[id(self.z)][..., None] / z_norm)
        for noise_map in self.optimized_noise(block):
            norm = noise_map.flatten(1).norm(dim=1).clamp(min=1e-12)
            noise_map.mul_((self._radii[id(noise_map)] / norm)[:, None, None, None])

    @torch.no_grad()
    def render_final(self) -> torch.Tensor:
        """Each image's lowest-MSE render over all steps and rounds."""
        best = self.best
        ws = F.leaky_relu(best.z * self.std + self.mean, PROXY_SLOPE)
        images = None
        # every round so far rendered whole and picked per image: the host never reads which round won
        for block in range(self.block + 1):
            features = best.features[block - 1] if block else None
            rendered = render_from(self.generator, block, features, ws, best.noise)
            images = (
                rendered
                if images is None
                else torch.where((best.block == block)[:, None, None, None], rendered, images)
            )
        return images

    def state(self, index: int) -> dict[str, torch.Tensor]:
        best = self.best
        block = int(best.block[index])
        tensors = {
            "w_plus": F.leaky_relu(best.z[index] * self.std + self.mean, PROXY_SLOPE).clone(),
            "z": best.z[index].clone(),
            "start_block": torch.tensor(block),
            **{f"noise.{i}": m[index].clone() for i, m in enumerate(best.noise)},
        }
        if block:
            tensors["features"] = best.features[block - 1][index].clone()
        return tensors

    @classmethod
    @torch.no_grad()
    def render_state(cls, generator: Generator, tensors: dict[str, torch.Tensor], config) -> torch.Tensor:
        block = int(tensors["start_block"])
        device = generator.input.input.device
        noise = [tensors[f"noise.{i}"][None].to(device) for i in range(generator.num_noise_layers)]
        features = tensors["features"][None].to(device) if block else None
        return render_from(generator, block, features, tensors["w_plus"][None].to(device), noise)
