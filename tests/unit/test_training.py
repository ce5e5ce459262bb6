"""Training a prior: discriminator, losses, augmentation, EMA, and the Lightning module end to end."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sphinx.generators import Generator, load_generator
from sphinx.training import DiffAugment, Discriminator
from sphinx.training.ema import ema_beta, update_ema
from sphinx.training.grid import image_grid
from sphinx.training.losses import discriminator_loss, generator_loss, path_length_penalty, r1_penalty

TINY_CHANNELS = {4: 32, 8: 16, 16: 8}


def real_images(count: int = 6, size: int = 16) -> torch.Tensor:
    """Crops of skimage's sample photographs, ``[count, 3, size, size]`` in [-1, 1] (no font needed)."""
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee()]
    crops = []
    for index in range(count):
        photo = photos[index % len(photos)]
        side = min(photo.shape[:2]) // 2
        top = (index // len(photos)) * side // 2
        crop = Image.fromarray(photo[top : top + side, :side]).resize((size, size), Image.Resampling.LANCZOS)
        crops.append(np.asarray(crop))
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 127.5 - 1


def tiny_pair(seed: int = 0) -> tuple[Generator, Discriminator]:
    torch.manual_seed(seed)
    generator = Generator(16, 32, 2, channels=TINY_CHANNELS)
    discriminator = Discriminator(16, channels=TINY_CHANNELS, mbstd_group_size=2)
    return generator, discriminator


# ------------------------------------------------------------------ networks and losses
def test_discriminator_couples_images_only_through_their_stddev_group() -> None:
    _, discriminator = tiny_pair()
    images = real_images(4)
    logits = discriminator(images)
    assert logits.shape == (4, 1) and torch.isfinite(logits).all()
    # groups of 2 in a batch of 4 are images (0, 2) and (1, 3)
    changed = images.clone()
    changed[0] = -changed[0]
    rescored = discriminator(changed)
    assert not torch.allclose(rescored[2], logits[2])
    assert torch.allclose(rescored[1], logits[1]) and torch.allclose(rescored[3], logits[3])
    with pytest.raises(ValueError, match=r"\[B, 3, 16, 16\]"):
        discriminator(images[:, :, :8, :8])


def test_discriminator_layers_use_equalized_learning_rate() -> None:
    _, discriminator = tiny_pair()
    conv = discriminator.from_rgb.conv
    assert conv.weight.std().item() == pytest.approx(1.0, rel=0.5)  # stored N(0, 1)
    assert conv.scale == pytest.approx(1 / math.sqrt(3))


def test_logistic_losses_match_their_formulas() -> None:
    real, fake = torch.tensor([[2.0], [0.0]]), torch.tensor([[-1.0], [3.0]])
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    expected_d = (softplus(-1) + softplus(3)) / 2 + (softplus(-2) + softplus(0)) / 2
    assert discriminator_loss(real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    assert generator_loss(fake).item() == pytest.approx((softplus(1) + softplus(-3)) / 2, rel=1e-6)


def test_r1_is_the_squared_input_gradient() -> None:
    images = torch.randn(3, 3, 4, 4, requires_grad=True)
    weight = torch.randn(3, 4, 4)
    logits = (images * weight).sum(dim=[1, 2, 3])[:, None]  # linear: gradient = weight
    assert r1_penalty(logits, images).item() == pytest.approx(weight.pow(2).sum().item(), rel=1e-5)


def test_path_length_penalty_is_differentiable_and_updates_its_mean() -> None:
    generator, _ = tiny_pair()
    ws = generator.mapping(torch.randn(2, 32))[:, None].repeat(1, generator.n_latent, 1)
    images = generator.synthesis(ws, noise=generator.make_noise(2))
    penalty, lengths, mean = path_length_penalty(images, ws, torch.zeros(()), decay=0.5)
    penalty.backward()
    assert lengths.shape == (2,) and torch.isfinite(penalty)
    assert mean.item() == pytest.approx(0.5 * lengths.mean().item(), rel=1e-5)
    assert generator.input.input.grad is not None


def test_ema_half_life_is_counted_in_images() -> None:
    beta = ema_beta(8, 10**9, half_life_images=1000, rampup=None)
    assert beta ** (1000 / 8) == pytest.approx(0.5)
    # early on the rampup shortens the half-life, so the average forgets the random start
    assert ema_beta(8, 800, half_life_images=1000, rampup=0.05) < beta
    average, model = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = average.weight.detach().clone()
    update_ema(average, model, 0.75)
    assert torch.allclose(average.weight, 0.75 * before + 0.25 * model.weight)


# ------------------------------------------------------------------ augmentation
def test_augmentation_is_reproducible_per_seed_and_differentiable() -> None:
    augment = DiffAugment()
    images = real_images(4).requires_grad_(True)
    first = augment(images, generator=torch.Generator().manual_seed(1))
    second = augment(images, generator=torch.Generator().manual_seed(1))
    other = augment(images, generator=torch.Generator().manual_seed(2))
    assert torch.equal(first, second) and not torch.equal(first, other)
    first.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_augmentation_with_probability_zero_is_the_identity() -> None:
    images = real_images(3)
    assert torch.allclose(DiffAugment(probability=0.0)(images), images, atol=1e-6)


def test_translation_moves_content_and_repeats_the_border() -> None:
    images = torch.zeros(64, 3, 8, 8)
    images[:, :, 3:5, 3:5] = 1.0
    moved = DiffAugment(["translation"], translation=0.25)(images, generator=torch.Generator().manual_seed(0))
    centers = [tuple(torch.nonzero(image[0] > 0).float().mean(dim=0).tolist()) for image in moved]
    assert len(set(centers)) > 5  # different shifts per sample
    assert (moved.sum(dim=[1, 2, 3]) == images.sum(dim=[1, 2, 3])).all()  # a bright square on black stays whole


def test_flip_mirrors_about_half_the_batch() -> None:
    images = torch.arange(8.0).reshape(1, 1, 1, 8).expand(200, 3, 8, 8)
    flipped = DiffAugment(["flip"])(images, generator=torch.Generator().manual_seed(0))
    mirrored = (flipped[:, 0, 0, 0] == 7).float().mean().item()
    assert 0.35 < mirrored < 0.65


def test_unknown_augmentation_is_refused() -> None:
    with pytest.raises(ValueError, match="cutout"):
        DiffAugment(["flip", "cutout"])


def test_image_grid_tiles_in_rows() -> None:
    images = -torch.ones(5, 3, 2, 2)
    images[1] = 1.0
    grid = image_grid(images, columns=2)
    assert grid.shape == (6, 4, 3) and grid.dtype == np.uint8
    assert (grid[0:2, 2:4] == 255).all() and (grid[0:2, 0:2] == 0).all()
    assert (grid[4:6, 2:4] == 255).all()  # empty cell of the last row stays white


# ------------------------------------------------------------------ the Lightning module
def fit(out_dir: Path, *, steps: int, resume: Path | None = None, crash_at: int | None = None, pl_weight: float = 0.0):
    import pytorch_lightning as pl

    from sphinx.lit.gan import GANModule, GANSettings

    generator, discriminator = tiny_pair(seed=0)
    module = GANModule(
        generator,
        discriminator,
        real_images(6),
        settings=GANSettings(
            steps=steps,
            batch_size=4,
            r1_every=2,
            pl_weight=pl_weight,
            pl_every=2,
            sample_every=2,
            checkpoint_every=2,
            log_every=1,
            num_samples=4,
            seed=3,
            latent_avg_samples=64,
        ),
        augment=DiffAugment(),
        out_dir=out_dir,
        resume=resume,
    )

    class Kill(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if int(batch) == crash_at:
                raise RuntimeError("simulated kill")

    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        callbacks=[Kill()],
    )
    trainer.fit(module)
    return module


def test_a_few_steps_give_finite_losses_and_a_checkpoint_load_generator_reads(tmp_path: Path) -> None:
    module = fit(tmp_path, steps=4, pl_weight=1.0)
    history = module.history
    assert history["step"] == [1.0, 2.0, 3.0, 4.0]
    for key in ("loss_d", "loss_g"):
        assert all(math.isfinite(value) for value in history[key])
    assert all(math.isfinite(value) for value in history["r1"] if not math.isnan(value))
    assert any(math.isfinite(value) for value in history["path_length"])
    path = tmp_path / "checkpoints" / "last.pt"
    payload = torch.load(path, weights_only=True)
    assert {"g_ema", "g", "d", "latent_avg", "g_optim", "d_optim", "step", "config"} <= set(payload)
    assert payload["step"] == 4 and payload["images_seen"] == 16
    assert not list(path.parent.glob("*.tmp"))
    loaded = load_generator(path)
    assert loaded.config == module.generator_ema.config
    z = torch.randn(2, 32)
    noise = loaded.make_noise(2, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(loaded(z, noise=noise), module.generator_ema(z, noise=noise), atol=1e-5)
    assert torch.allclose(loaded.latent_avg, payload["latent_avg"])
    samples = sorted((tmp_path / "samples").glob("*.png"))
    assert [p.name for p in samples] == ["step-000002.png", "step-000004.png"]
    assert Image.open(samples[-1]).size == (32, 32)  # 4 samples of 16 px in a 2x2 grid


def test_killed_run_resumes_at_the_saved_step_with_identical_state(tmp_path: Path) -> None:
    whole = fit(tmp_path / "whole", steps=6)
    with pytest.raises(RuntimeError, match="simulated kill"):
        fit(tmp_path / "killed", steps=6, crash_at=3)  # last checkpoint: step 2
    checkpoint = tmp_path / "killed" / "checkpoints" / "last.pt"
    assert torch.load(checkpoint, weights_only=True)["step"] == 2
    resumed = fit(tmp_path / "resumed", steps=6, resume=checkpoint)
    assert resumed.step == 6
    assert resumed.history["step"] == whole.history["step"]
    for ours, theirs in [
        (resumed.generator_ema, whole.generator_ema),
        (resumed.generator, whole.generator),
        (resumed.discriminator, whole.discriminator),
    ]:
        for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
            assert torch.equal(a, b), name
    optimizer_state = torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=True)["g_optim"]
    reference_state = torch.load(tmp_path / "whole" / "checkpoints" / "last.pt", weights_only=True)["g_optim"]
    for index, state in reference_state["state"].items():
        assert torch.equal(optimizer_state["state"][index]["exp_avg"], state["exp_avg"])


def test_resume_refuses_a_different_architecture(tmp_path: Path) -> None:
    import pytorch_lightning as pl

    from sphinx.errors import CheckpointError
    from sphinx.lit.gan import GANModule, GANSettings

    fit(tmp_path, steps=2)
    torch.manual_seed(0)
    wider = Generator(16, 32, 2, channels={4: 32, 8: 32, 16: 8})
    module = GANModule(
        wider,
        Discriminator(16, channels=TINY_CHANNELS),
        real_images(4),
        settings=GANSettings(steps=4, batch_size=2),
        augment=None,
        out_dir=tmp_path / "other",
        resume=tmp_path / "checkpoints" / "last.pt",
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with pytest.raises(CheckpointError, match="architecture"):
        trainer.fit(module)


@pytest.mark.slow  # a subprocess of the entry point: ~10 s of CPU to import alone
def test_training_core_imports_without_lightning_or_hydra() -> None:
    code = (
        "import sys\n"
        "for name in ('pytorch_lightning', 'lightning', 'hydra', 'omegaconf', 'wandb'):\n"
        "    sys.modules[name] = None\n"
        "import sphinx.training, sphinx.training.losses, sphinx.training.grid, sphinx.data.emoji\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_export_keeps_only_the_ema_generator_in_float16(tmp_path: Path) -> None:
    from sphinx.training.export import export_generator

    module = fit(tmp_path / "run", steps=2)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.pt"
    exported = export_generator(checkpoint, tmp_path / "prior.pt")
    payload = torch.load(exported, weights_only=True)
    assert set(payload) == {"g_ema", "latent_avg", "config", "training"}
    assert all(t.dtype == torch.float16 for t in payload["g_ema"].values())
    assert payload["training"]["step"] == 2
    assert exported.stat().st_size < checkpoint.stat().st_size / 4
    loaded = load_generator(exported)
    z = torch.randn(3, 32)
    with torch.no_grad():
        ours, theirs = loaded(z), module.generator_ema(z)
    assert (ours - theirs).abs().max() < 0.02  # float16 storage, float32 compute
