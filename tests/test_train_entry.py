"""``python -m sphinx.train``: every training config composes, and the entry point trains and resumes."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import compose
from sphinx.configs import config_dir
from sphinx.generators import load_generator

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = Path(config_dir("train"))
OPTIONS = {group: sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml")) for group in ("model", "data", "trainer")}
EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))


def image_folder(folder: Path, *, count: int = 4, size: int = 16) -> Path:
    """A prepared-data folder (index.csv + PNGs) made from skimage photos, so no font is needed."""
    from skimage import data

    folder.mkdir(parents=True)
    rows = []
    for index, photo in enumerate([data.astronaut(), data.chelsea(), data.coffee(), data.rocket()][:count]):
        name = f"{index}.png"
        Image.fromarray(np.asarray(Image.fromarray(photo).resize((size, size)))).save(folder / name)
        rows.append({"file": name, "codepoints": str(index), "name": name, "group": "photo", "split": "train"})
    with open(folder / "index.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder


@pytest.mark.parametrize("group,option", [(g, o) for g, options in OPTIONS.items() for o in options])
def test_every_option_composes_and_resolves(group: str, option: str) -> None:
    from omegaconf import OmegaConf

    cfg = compose("train", f"{group}={option}")
    OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_builds_its_networks(experiment: str) -> None:
    from hydra.utils import instantiate

    cfg = compose("train", f"+experiment={experiment}")
    generator = instantiate(cfg.model.generator)
    discriminator = instantiate(cfg.model.discriminator)
    assert generator.resolution == discriminator.resolution == 64
    assert generator.channels == {4: 256, 8: 256, 16: 128, 32: 64, 64: 32}


def test_run_dirs_have_sub_second_timestamps() -> None:
    from omegaconf import OmegaConf

    cfg = compose("train", hydra=True)
    assert "%f" in OmegaConf.to_container(cfg.hydra.run, resolve=False)["dir"]
    assert re.fullmatch(r"outputs/train/\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-\d{6}", cfg.hydra.run.dir)


def test_seed_zero_is_honoured(tmp_path: Path) -> None:
    from sphinx.build import build_training as build

    folder = image_folder(tmp_path / "data")

    def initial_weights(seed: int) -> torch.Tensor:
        cfg = compose("train", "model=tiny16", f"data.folder={folder}", f"seed={seed}")
        module, _ = build(cfg, tmp_path / f"run{seed}")
        return module.generator.input.input.detach().clone()

    assert torch.equal(initial_weights(0), initial_weights(0))
    assert not torch.equal(initial_weights(0), initial_weights(1))


def run_entry(*overrides: str) -> subprocess.CompletedProcess:
    # one thread: the test workers share this machine's cores
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "sphinx.train", *overrides],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_entry_point_trains_writes_a_loadable_checkpoint_and_resumes(tmp_path: Path) -> None:
    folder = image_folder(tmp_path / "data")
    common = [
        "model=tiny16",
        f"data.folder={folder}",
        "gan.batch_size=2",
        "gan.checkpoint_every=2",
        "gan.sample_every=2",
        "gan.num_samples=4",
        "gan.latent_avg_samples=64",
        "threads=1",
        "trainer.enable_progress_bar=false",
    ]
    first = run_entry(*common, "gan.steps=2", f"hydra.run.dir={tmp_path / 'first'}")
    assert first.returncode == 0, first.stderr[-3000:]
    checkpoint = tmp_path / "first" / "checkpoints" / "last.pt"
    assert load_generator(checkpoint).resolution == 16
    assert (tmp_path / "first" / "samples" / "step-000002.png").is_file()

    second = run_entry(*common, "gan.steps=3", f"resume={checkpoint}", f"hydra.run.dir={tmp_path / 'second'}")
    assert second.returncode == 0, second.stderr[-3000:]
    payload = torch.load(tmp_path / "second" / "checkpoints" / "last.pt", weights_only=True)
    # the history continues: the first run closed its window at step 2, the resumed one at 3
    assert payload["step"] == 3 and payload["history"]["step"] == [2.0, 3.0]


def photo_folder(folder: Path) -> Path:
    """Any folder of images: photos of several sizes and shapes, one in a sub-folder, one broken file."""
    from skimage import data

    (folder / "more").mkdir(parents=True)
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")  # 512 x 512
    Image.fromarray(data.chelsea()).save(folder / "chelsea.jpg")  # 451 x 300, not square
    Image.fromarray(data.coffee()).save(folder / "more" / "coffee.png")
    (folder / "broken.png").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("not an image either")
    return folder


def test_a_prior_trains_on_any_folder_of_images(tmp_path: Path, caplog) -> None:
    from sphinx.build import build_training as build

    folder = photo_folder(tmp_path / "photos")
    cfg = compose(
        "train",
        *[
            "model=tiny16",
            "data=folder",
            f"data.path={folder}",
            "gan.steps=2",
            "gan.batch_size=2",
            "gan.checkpoint_every=2",
            "gan.sample_every=2",
            "gan.num_samples=4",
            "gan.latent_avg_samples=64",
            "threads=1",
            "trainer.enable_progress_bar=false",
        ],
    )
    module, trainer = build(cfg, tmp_path / "run")
    # the three readable photos, cropped and resized to the model's 16 px; the broken file left out
    assert list(module.images.shape) == [3, 3, 16, 16]
    assert module.images.min() >= -1 and module.images.max() <= 1
    assert "1 of 4 image files" in caplog.text and "broken.png" in caplog.text
    trainer.fit(module)
    assert module.step == 2
    assert load_generator(tmp_path / "run" / "checkpoints" / "last.pt").resolution == 16


def test_a_folder_run_without_a_path_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    from sphinx.build import build_training as build
    from sphinx.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"^data.path is not set; e.g. data=folder needs data.path=/folder/of/images$"
    ):
        build(compose("train", "model=tiny16", "data=folder"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"not a checkpoint", r"last\.pt: truncated or corrupt training checkpoint"),
        (None, r"last\.pt: refused: .*hash bomb"),
    ],
    ids=["garbage", "hash bomb"],
)
def test_a_corrupt_resume_checkpoint_is_one_line_naming_it(tmp_path: Path, content, expected) -> None:
    from helpers.crafted import hash_bomb, torch_archive
    from sphinx.build import build_training as build
    from sphinx.errors import CheckpointError

    checkpoint = tmp_path / "last.pt"
    if content is None:
        torch_archive(hash_bomb(), checkpoint)
    else:
        checkpoint.write_bytes(content)
    cfg = compose("train", "model=tiny16", f"data.folder={image_folder(tmp_path / 'data')}", f"resume={checkpoint}")
    module, trainer = build(cfg, tmp_path / "run")
    with pytest.raises(CheckpointError, match=expected) as refused:
        module.setup("fit")
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "override, message",
    [
        ("seed=abc", "seed must be an integer, got 'abc'"),
        ("threads=abc", "threads must be an integer, got 'abc'"),
        ("threads=0", "threads must be at least 1, got 0"),
        ("gan.batch_size=abc", "gan.batch_size must be an integer >= 1, got 'abc'"),
        ("gan.steps=0", "gan.steps must be an integer >= 1, got 0"),
        ("gan.sample_every=0", "gan.sample_every must be an integer >= 1, got 0"),
        ("gan.lr=inf", "gan.lr must be a finite number > 0, got inf"),
        ("gan.r1_gamma=-1", "gan.r1_gamma must be a finite number >= 0, got -1"),
        ("gan.mixing_prob=2", "gan.mixing_prob must be a finite number in [0, 1], got 2"),
        ("gan.ema_rampup=nan", "gan.ema_rampup must be a finite number >= 0, got nan"),
        ("gan.betas=[0.9]", "gan.betas must be two numbers in [0, 1), e.g. [0.0, 0.99], got [0.9]"),
        ("trainer=gpu", "trainer.accelerator=gpu needs a CUDA GPU and this machine has none; use trainer=cpu"),
        ("trainer.devices=abc", "cannot build the trainer: `devices` selected with `CPUAccelerator` should be an int"),
    ],
)
def test_bad_training_options_are_refused_in_one_line(override: str, message: str, tmp_path: Path, monkeypatch) -> None:
    from sphinx.build import build_training as build
    from sphinx.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    threads = torch.get_num_threads()
    folder = image_folder(tmp_path / "data")
    try:
        with pytest.raises(ConfigError) as refused:
            build(compose("train", "model=tiny16", f"data.folder={folder}", override), tmp_path / "run")
    finally:
        torch.set_num_threads(threads)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_the_help_says_what_sphinx_train_does_and_how_to_prepare_its_default_data() -> None:
    help_node = compose("train", hydra=True).hydra.help
    assert help_node.app_name == "sphinx.train"
    assert help_node.header.startswith("sphinx.train: train a StyleGAN2 prior")
    assert "python -m sphinx.data.emoji --out data/emoji64" in help_node.footer
    assert "resume=<run dir>/checkpoints/last.pt" in help_node.footer


@pytest.mark.slow  # a subprocess of the entry point
def test_the_default_config_without_its_emoji_data_is_one_line_saying_how_to_prepare_them(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "sphinx.train", f"hydra.run.dir={tmp_path / 'run'}"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert (result.stdout + result.stderr).splitlines() == [
        "error: data/emoji64/index.csv not found; prepare the data with `python -m sphinx.data.emoji --out data/emoji64`"
    ]
