"""Training a StyleGAN2 generator with Lightning: manual optimization of G and D.

One training step is one discriminator update (plus lazy R1 every ``r1_every`` steps) and one
generator update (plus lazy path-length regularization every ``pl_every`` steps, if enabled),
then an EMA update of the generator copy that is shipped.

Every random draw of step ``k`` comes from generators seeded by ``(seed, k)``, so a run resumed
from a checkpoint continues exactly as the uninterrupted run would have (on CPU; GPU kernels
may add their own nondeterminism). Checkpoints are written in the PyTorch port's format
(``g_ema``, ``g``, ``d``, ``latent_avg``, ...), atomically, so :func:`sphinx.generators.load_generator`
reads them and a killed run never leaves half a file.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, IterableDataset

from sphinx.errors import CheckpointError, ConfigError
from sphinx.generators.stylegan2 import Generator
from sphinx.training.augment import DiffAugment
from sphinx.training.discriminator import Discriminator
from sphinx.training.ema import ema_beta, update_ema
from sphinx.training.grid import save_grid
from sphinx.training.losses import discriminator_loss, generator_loss, path_length_penalty, r1_penalty
from sphinx.utils.files import atomic_open
from sphinx.utils.seeding import stream_seed
from sphinx.utils.untrusted_files import load_torch_file

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"
HISTORY_KEYS = ("loss_d", "loss_g", "r1", "path_length", "real_logit", "fake_logit")


class _StepRange(IterableDataset):
    """Yields the step numbers still to run; the module draws its own batch for each step."""

    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = start, stop

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)


@dataclass(frozen=True)
class GANSettings:
    """Training hyper-parameters of :class:`GANModule` (the ``gan`` group of ``conf/train``).

    Attributes:
        steps: total training steps (a resumed run stops at the same total).
        batch_size: images per step.
        lr: Adam learning rate of both networks (before the lazy-regularization correction).
        betas: Adam betas (StyleGAN2 uses (0, 0.99)).
        r1_gamma: R1 weight; 0 disables R1.
        r1_every: R1 interval in steps (lazy regularization).
        pl_weight: path-length weight; 0 disables it.
        pl_every: path-length interval in steps.
        pl_batch_shrink: the path-length batch is ``batch_size // pl_batch_shrink``.
        mixing_prob: chance that a generated sample mixes two latents at a random layer.
        ema_half_life_images: half-life of the generator average, in images.
        ema_rampup: early bound of the half-life as a fraction of the images seen; None: off.
        seed: seeds every per-step random draw and the sample latents.
        sample_every: write a sample grid every this many steps.
        checkpoint_every: write ``checkpoints/last.pt`` every this many steps (and at the end).
        log_every: steps averaged into one point of the loss history stored in checkpoints.
        num_samples: images in a sample grid (drawn from fixed latents).
        latent_avg_samples: draws used for ``latent_avg`` in checkpoints.
    """

    # the fields up to seed are saved in every checkpoint's config.training, in this order
    steps: int
    batch_size: int = 16
    lr: float = 0.002
    betas: tuple[float, float] = (0.0, 0.99)
    r1_gamma: float = 0.2
    r1_every: int = 16
    pl_weight: float = 0.0
    pl_every: int = 4
    pl_batch_shrink: int = 2
    mixing_prob: float = 0.9
    ema_half_life_images: float = 10_000
    ema_rampup: float | None = 0.05
    seed: int = 0
    sample_every: int = 500
    checkpoint_every: int = 500
    log_every: int = 10
    num_samples: int = 64
    latent_avg_samples: int = 4096

    def __post_init__(self) -> None:
        # Hydra gives an int for `gan.lr=1` and a list for betas: hold the declared types, which
        # the checkpoints store; a value of another kind, or out of its range, is refused in one line
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "int":
                least = 0 if field.name == "seed" else 1  # the *_every intervals divide the step
                if isinstance(value, bool) or not isinstance(value, int) or value < least:
                    raise ConfigError(f"gan.{field.name} must be an integer >= {least}, got {value!r}")
            elif field.type == "float" or (field.type == "float | None" and value is not None):
                rule = _FLOAT_RULES.get(field.name, ">= 0")
                if not (_number(value) and _RULES[rule](value)):
                    raise ConfigError(f"gan.{field.name} must be a finite number {rule}, got {value!r}")
                object.__setattr__(self, field.name, float(value))
        betas = self.betas
        if not (isinstance(betas, (list, tuple)) and len(betas) == 2 and all(_number(b) and 0 <= b < 1 for b in betas)):
            raise ConfigError(f"gan.betas must be two numbers in [0, 1), e.g. [0.0, 0.99], got {betas!r}")
        object.__setattr__(self, "betas", (float(betas[0]), float(betas[1])))


_RULES = {"> 0": lambda v: v > 0, ">= 0": lambda v: v >= 0, "in [0, 1]": lambda v: 0 <= v <= 1}
_FLOAT_RULES = {"lr": "> 0", "ema_half_life_images": "> 0", "mixing_prob": "in [0, 1]"}


def _number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


class GANModule(pl.LightningModule):
    """StyleGAN2 training: non-saturating loss, lazy R1, optional path length, EMA, style mixing.

    Args:
        generator: the generator to train (its architecture is saved in every checkpoint).
        discriminator: the discriminator.
        images: the training images ``[N, 3, H, W]`` in [-1, 1], held on the module's device.
        settings: the training hyper-parameters.
        augment: differentiable augmentation applied before every discriminator call, or None.
        out_dir: run folder; checkpoints go to ``checkpoints/``, sample grids to ``samples/``.
        resume: a checkpoint of this training code to continue from, or None.
    """

    def __init__(
        self,
        generator: Generator,
        discriminator: Discriminator,
        images: torch.Tensor,
        *,
        settings: GANSettings,
        augment: DiffAugment | None,
        out_dir: str | os.PathLike[str],
        resume: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        if images.ndim != 4 or images.shape[1:] != (3, generator.resolution, generator.resolution):
            raise ValueError(
                f"images must be [N, 3, {generator.resolution}, {generator.resolution}], got {list(images.shape)}"
            )
        if discriminator.resolution != generator.resolution:
            raise ValueError(f"discriminator is {discriminator.resolution} px, generator {generator.resolution} px")
        self.automatic_optimization = False
        self.settings = settings
        self.generator = generator
        self.discriminator = discriminator
        self.generator_ema = copy.deepcopy(generator).eval().requires_grad_(False)
        self.augment = augment
        self.register_buffer("images", images.float(), persistent=False)
        self.register_buffer("mean_path_length", torch.zeros(()), persistent=False)
        self.out_dir = Path(out_dir)
        self.resume = Path(resume) if resume is not None else None
        # hyper-parameters as plain values, saved with every checkpoint (the output cadence is not)
        training = dataclasses.asdict(settings)
        for key in ("sample_every", "checkpoint_every", "log_every", "num_samples", "latent_avg_samples"):
            del training[key]
        self.training_config = {
            **training,
            "betas": list(settings.betas),
            "num_images": int(images.shape[0]),
            "augment": None
            if augment is None
            else {
                "policy": list(augment.policy),
                "probability": augment.probability,
                "translation": augment.translation,
                "brightness": augment.brightness,
                "saturation": augment.saturation,
                "contrast": augment.contrast,
            },
        }
        self.step = 0
        self.history: dict[str, list[float]] = {"step": [], **{key: [] for key in HISTORY_KEYS}}
        self._window: dict[str, list[float]] = {key: [] for key in HISTORY_KEYS}
        self._wall_seconds_before = 0.0
        self._started: float | None = None
        self._pending_optimizer_states: tuple[dict, dict] | None = None

    # ----------------------------------------------------------------- setup and resume
    def setup(self, stage: str) -> None:
        if self.resume is not None and stage == "fit":
            self._restore(self.resume)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        # Lazy regularization runs the regularizer every k steps at k times the weight; StyleGAN2
        # rescales lr and betas by k / (k + 1) so the optimizer's effective step matches.
        s = self.settings
        g_ratio = s.pl_every / (s.pl_every + 1) if s.pl_weight > 0 else 1.0
        d_ratio = s.r1_every / (s.r1_every + 1) if s.r1_gamma > 0 else 1.0
        g_optim = torch.optim.Adam(
            self.generator.parameters(), lr=s.lr * g_ratio, betas=(s.betas[0] ** g_ratio, s.betas[1] ** g_ratio)
        )
        d_optim = torch.optim.Adam(
            self.discriminator.parameters(), lr=s.lr * d_ratio, betas=(s.betas[0] ** d_ratio, s.betas[1] ** d_ratio)
        )
        return [g_optim, d_optim]

    def on_fit_start(self) -> None:
        if self._pending_optimizer_states is not None:
            g_optim, d_optim = self.trainer.optimizers
            g_optim.load_state_dict(self._pending_optimizer_states[0])
            d_optim.load_state_dict(self._pending_optimizer_states[1])
            self._pending_optimizer_states = None

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_StepRange(self.step, self.settings.steps), batch_size=None)

    def _restore(self, path: Path) -> None:
        payload = load_torch_file(path, what="training checkpoint", remedy="give a last.pt that sphinx.train wrote")
        missing = {"g", "d", "g_ema", "g_optim", "d_optim", "step", "config"} - set(
            payload if isinstance(payload, dict) else ()
        )
        if missing:
            raise CheckpointError(
                f"{path}: not a training checkpoint of sphinx (lacks {sorted(missing)}); "
                "a generator-only file cannot resume training"
            )
        saved = payload["config"].get("generator") if isinstance(payload["config"], dict) else None
        if saved != self.generator.config:
            raise CheckpointError(
                f"{path}: generator architecture {saved} differs from the configured {self.generator.config}"
            )
        try:
            self.generator.load_state_dict(payload["g"], strict=True)
            self.discriminator.load_state_dict(payload["d"], strict=True)
            self.generator_ema.load_state_dict(payload["g_ema"], strict=True)
            self.step = int(payload["step"])
            self.mean_path_length.fill_(float(payload.get("mean_path_length", 0.0)))
        except (RuntimeError, TypeError, ValueError, AttributeError) as mismatch:
            reason = " ".join(str(mismatch).split())[:160]
            raise CheckpointError(
                f"{path}: a damaged training checkpoint ({reason}); resume from another last.pt or start afresh"
            ) from None
        self._pending_optimizer_states = (payload["g_optim"], payload["d_optim"])
        self.history = {key: list(values) for key, values in payload.get("history", self.history).items()}
        self._wall_seconds_before = float(payload.get("wall_seconds", 0.0))
        log.info("resuming from %s at step %d", path, self.step)

    # ----------------------------------------------------------------- training
    def _random(self, step: int, stream: str) -> torch.Generator:
        generator = torch.Generator(device=self.device)
        generator.manual_seed(stream_seed(self.settings.seed, "train", step, stream))
        return generator

    def _latents(self, batch: int, draw: torch.Generator, *, mixing: bool) -> torch.Tensor:
        """W+ latents ``[B, n_latent, style_dim]``, mixing two mapped z per sample at random layers."""
        generator = self.generator
        z = torch.randn(2 * batch, generator.style_dim, generator=draw, device=self.device)
        w = generator.mapping(z).reshape(2, batch, generator.style_dim)  # [2, B, S]
        rows = torch.arange(generator.n_latent, device=self.device)
        crossover = torch.randint(1, generator.n_latent, (batch,), generator=draw, device=self.device)
        mixed = torch.rand(batch, generator=draw, device=self.device) < (self.settings.mixing_prob if mixing else 0.0)
        crossover = torch.where(mixed, crossover, torch.full_like(crossover, generator.n_latent))
        first = rows[None, :, None] < crossover[:, None, None]  # [B, n_latent, 1]
        return torch.where(first, w[0][:, None, :], w[1][:, None, :])  # [B, n_latent, S]

    def _fake(self, batch: int, draw: torch.Generator) -> torch.Tensor:
        ws = self._latents(batch, draw, mixing=True)
        return self.generator.synthesis(ws, noise=self.generator.make_noise(batch, generator=draw))

    def _augment(self, images: torch.Tensor, draw: torch.Generator) -> torch.Tensor:
        return images if self.augment is None else self.augment(images, generator=draw)

    def on_train_start(self) -> None:
        self._started = time.monotonic()

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        step = int(batch)
        g_optim, d_optim = self.optimizers()
        s = self.settings
        size = s.batch_size
        values: dict[str, float] = {}

        # discriminator
        draw = self._random(step, "discriminator")
        self.generator.requires_grad_(False)
        self.discriminator.requires_grad_(True)
        index = torch.randint(self.images.shape[0], (size,), generator=draw, device=self.device)
        real = self.images[index]  # [B, 3, H, W]
        with torch.no_grad():
            fake = self._fake(size, draw)
        real_logits = self.discriminator(self._augment(real, draw))
        fake_logits = self.discriminator(self._augment(fake, draw))
        loss_d = discriminator_loss(real_logits, fake_logits)
        d_optim.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        d_optim.step()
        values.update(loss_d=loss_d.item(), real_logit=real_logits.mean().item(), fake_logit=fake_logits.mean().item())

        if s.r1_gamma > 0 and step % s.r1_every == 0:
            real_input = real.detach().requires_grad_(True)
            logits = self.discriminator(self._augment(real_input, draw))
            r1 = r1_penalty(logits, real_input)
            d_optim.zero_grad(set_to_none=True)
            # "+ 0 * logits" keeps every D parameter in the graph (DDP expects all to get grads)
            self.manual_backward(s.r1_gamma / 2 * r1 * s.r1_every + 0 * logits.mean())
            d_optim.step()
            values["r1"] = r1.item()

        # generator
        draw = self._random(step, "generator")
        self.generator.requires_grad_(True)
        self.discriminator.requires_grad_(False)
        fake_logits = self.discriminator(self._augment(self._fake(size, draw), draw))
        loss_g = generator_loss(fake_logits)
        g_optim.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        g_optim.step()
        values["loss_g"] = loss_g.item()

        if s.pl_weight > 0 and step % s.pl_every == 0:
            small = max(size // s.pl_batch_shrink, 1)
            ws = self._latents(small, draw, mixing=False)
            images = self.generator.synthesis(ws, noise=self.generator.make_noise(small, generator=draw))
            penalty, lengths, new_mean = path_length_penalty(images, ws, self.mean_path_length)
            self.mean_path_length.copy_(new_mean)
            g_optim.zero_grad(set_to_none=True)
            self.manual_backward(s.pl_weight * s.pl_every * penalty + 0 * images.mean())
            g_optim.step()
            values["path_length"] = lengths.mean().item()

        self.step = step + 1
        beta = ema_beta(size, self.step * size, half_life_images=s.ema_half_life_images, rampup=s.ema_rampup)
        update_ema(self.generator_ema, self.generator, beta)

        for key, value in values.items():
            if not torch.isfinite(torch.tensor(value)):
                raise FloatingPointError(f"step {step}: {key} is {value}; lower lr or raise r1_gamma")
        self.log_dict({f"train/{key}": value for key, value in values.items()}, prog_bar=False)
        self.log("train/images_seen", float(self.step * size))
        self.log_dict({"d": values["loss_d"], "g": values["loss_g"]}, prog_bar=True, logger=False)
        for key, value in values.items():
            self._window[key].append(value)
        if self.step % s.log_every == 0:
            self._flush_history()

        if self.step % s.sample_every == 0:
            self.save_samples()
        if self.step % s.checkpoint_every == 0:
            self.save_checkpoint()

    def on_train_end(self) -> None:
        self._flush_history()
        self.save_samples()
        self.save_checkpoint()

    def _flush_history(self) -> None:
        if not any(self._window.values()):
            return
        self.history["step"].append(float(self.step))
        for key in HISTORY_KEYS:
            window = self._window[key]
            self.history[key].append(sum(window) / len(window) if window else float("nan"))
            window.clear()

    # ----------------------------------------------------------------- outputs
    @property
    def batch_size(self) -> int:
        """Images per step (``sphinx.train`` reports the images seen with it)."""
        return self.settings.batch_size

    @property
    def wall_seconds(self) -> float:
        """Training wall time over all resumed segments."""
        running = time.monotonic() - self._started if self._started is not None else 0.0
        return self._wall_seconds_before + running

    @torch.no_grad()
    def save_samples(self) -> Path:
        """Write ``samples/step-XXXXXX.png``: the EMA generator on fixed latents, stored noise."""
        draw = torch.Generator().manual_seed(stream_seed(self.settings.seed, "samples"))
        z = torch.randn(self.settings.num_samples, self.generator.style_dim, generator=draw).to(self.device)
        images = self.generator_ema(z)
        return save_grid(images, self.out_dir / "samples" / f"step-{self.step:06d}.png")

    @torch.no_grad()
    def checkpoint_payload(self) -> dict:
        """Everything needed to resume, in the port's ``{"g_ema", "g", "d", "latent_avg", ...}`` layout."""
        g_optim, d_optim = self.trainer.optimizers if self._trainer is not None else (None, None)

        def cpu(state: dict) -> dict:
            return {key: value.detach().cpu() for key, value in state.items()}

        return {
            "g_ema": cpu(self.generator_ema.state_dict()),
            "g": cpu(self.generator.state_dict()),
            "d": cpu(self.discriminator.state_dict()),
            "latent_avg": self.generator_ema.mean_latent(self.settings.latent_avg_samples, seed=self.settings.seed)
            .reshape(-1)
            .cpu(),
            "g_optim": g_optim.state_dict() if g_optim is not None else {},
            "d_optim": d_optim.state_dict() if d_optim is not None else {},
            "step": self.step,
            "images_seen": self.step * self.settings.batch_size,
            "mean_path_length": float(self.mean_path_length),
            "wall_seconds": self.wall_seconds,
            "history": {key: list(values) for key, values in self.history.items()},
            "config": {
                "generator": self.generator.config,
                "discriminator": {
                    "resolution": self.discriminator.resolution,
                    "channels": dict(self.discriminator.channels),
                },
                "training": dict(self.training_config),
            },
        }

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/last.pt`` atomically (temporary file, then rename)."""
        path = self.out_dir / "checkpoints" / CHECKPOINT_NAME
        with atomic_open(path) as stream:
            torch.save(self.checkpoint_payload(), stream)
        return path
