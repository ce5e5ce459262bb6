"""A malformed state.pt is one line naming the file (or the image), never a traceback."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sphinx.errors import CheckpointError
from sphinx.generators import load_generator
from sphinx.inversion import InversionState, load_state, render_state, save_state
from sphinx.inversion.state import STATE_FORMAT


@pytest.fixture(scope="module")
def generator(fixtures_root):
    return load_generator(fixtures_root / "rosinality" / "tiny_g32.pt")


def good_state(generator) -> InversionState:
    w_plus = torch.zeros(generator.n_latent, generator.style_dim)
    return InversionState("wplus", "face.png", 0, {"steps": 3}, "tiny", {"w_plus": w_plus})


def test_a_good_state_round_trips_and_renders(generator, tmp_path):
    path = save_state(good_state(generator), tmp_path / "state.pt")
    assert render_state(generator, load_state(path)).shape == (1, 3, 32, 32)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda p: p.pop("seed"), "inversion state lacks seed"),
        (lambda p: p.__setitem__("config", {"stepz": 3}), "has no option stepz"),
        (lambda p: p.__setitem__("tensors", {"w_plus": "not a tensor"}), "tensors must all be tensors"),
        (lambda p: p.__setitem__("seed", "zero"), "seed must be an integer"),
        (lambda p: p.__setitem__("method", "nonsense"), "unknown method 'nonsense'"),
    ],
    ids=["missing-field", "bad-config-key", "non-tensor", "seed-type", "unknown-method"],
)
def test_a_malformed_state_file_is_one_line_naming_it(generator, tmp_path, edit, message):
    payload = {"format": STATE_FORMAT, **dataclasses.asdict(good_state(generator))}
    edit(payload)
    path = tmp_path / "state.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as refused:
        load_state(path)
    text = str(refused.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_wrong_shape_tensors_are_one_line_naming_the_image(generator):
    state = dataclasses.replace(good_state(generator), tensors={"w_plus": torch.zeros(3, 3)})
    with pytest.raises(CheckpointError, match="image face.png: its tensors do not fit this generator") as refused:
        render_state(generator, state)
    assert "\n" not in str(refused.value)
