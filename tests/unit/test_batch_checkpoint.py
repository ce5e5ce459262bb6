"""A batch stopped mid-flight and restored ends bit-identical to an uninterrupted one (CPU)."""

from __future__ import annotations

import pytest
import torch

from helpers.crafted import hash_bomb, torch_archive
from sphinx.generators import load_generator
from sphinx.inversion import invert
from sphinx.inversion.batch_checkpoint import BatchCheckpoint, RunInterrupted

OPTIONS = {
    "sphinx": {"steps": 6, "lpips_weight": 0.0, "spread_draws": 2},
    "w": {"steps": 6, "lpips_weight": 0.0, "mse_weight": 1.0, "w_avg_samples": 64},
    "wplus_noise": {"steps": 6, "noise_steps": 3, "lpips_weight": 0.0, "w_avg_samples": 64},
}


@pytest.fixture(scope="module")
def generator(fixtures_root):
    return load_generator(fixtures_root / "rosinality" / "tiny_g32.pt")


@pytest.fixture(scope="module")
def targets():
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1


def stop_after(calls: int):
    """A stop request that arrives after `calls` steps."""
    seen = {"n": 0}

    def requested():
        seen["n"] += 1
        return "SIGTERM" if seen["n"] >= calls else None

    return requested


# w renormalizes its noise after each step; wplus_noise is stopped in its second stage.
@pytest.mark.parametrize("method, stop_at, every", [("sphinx", 4, 3), ("w", 2, 0), ("wplus_noise", 5, 2)])
def test_a_stopped_and_restored_batch_equals_an_uninterrupted_one(generator, targets, tmp_path, method, stop_at, every):
    ids = ["a", "b"]
    whole = invert(generator, targets, ids, method=method, seed=3, **OPTIONS[method])
    path = tmp_path / "inflight.pt"
    with pytest.raises(RunInterrupted) as stopped:
        invert(
            generator,
            targets,
            ids,
            method=method,
            seed=3,
            checkpoint=BatchCheckpoint(path, every=every, stop_requested=stop_after(stop_at)),
            **OPTIONS[method],
        )
    assert stopped.value.signal_name == "SIGTERM" and stopped.value.saved == path and path.is_file()
    resumed = invert(
        generator, targets, ids, method=method, seed=3, checkpoint=BatchCheckpoint(path, every=every), **OPTIONS[method]
    )
    assert torch.equal(resumed.reconstructions, whole.reconstructions)
    assert torch.equal(resumed.loss_history, whole.loss_history)
    for a, b in zip(resumed.states, whole.states):
        assert a.tensors.keys() == b.tensors.keys()
        assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)
    if whole.vicinity_spread is not None:
        assert torch.equal(resumed.vicinity_spread, whole.vicinity_spread)


def test_a_checkpoint_of_another_batch_is_ignored(generator, targets, tmp_path):
    path = tmp_path / "inflight.pt"
    with pytest.raises(RunInterrupted):
        invert(
            generator,
            targets,
            ["a", "b"],
            method="w",
            seed=3,
            checkpoint=BatchCheckpoint(path, stop_requested=stop_after(2)),
            **OPTIONS["w"],
        )
    whole = invert(generator, targets, ["a", "c"], method="w", seed=3, **OPTIONS["w"])
    other = invert(generator, targets, ["a", "c"], method="w", seed=3, checkpoint=BatchCheckpoint(path), **OPTIONS["w"])
    assert torch.equal(other.reconstructions, whole.reconstructions)


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.write_bytes(b"PK\x03\x04 cut off"),
        lambda path: torch_archive(hash_bomb(), path),
        lambda path: torch.save({**torch.load(path, weights_only=True), "step": "three"}, path),
        lambda path: torch.save({**torch.load(path, weights_only=True), "params": [torch.zeros(1)]}, path),
    ],
    ids=["truncated", "hash bomb", "counter not an int", "tensors of another shape"],
)
def test_a_damaged_checkpoint_is_set_aside_and_its_batch_starts_afresh(generator, targets, tmp_path, caplog, damage):
    path = tmp_path / "inflight.pt"
    with pytest.raises(RunInterrupted):
        invert(generator, targets, ["a", "b"], method="w", seed=3, **OPTIONS["w"],
               checkpoint=BatchCheckpoint(path, stop_requested=stop_after(2)))  # fmt: skip
    damage(path)
    damaged = path.read_bytes()
    whole = invert(generator, targets, ["a", "b"], method="w", seed=3, **OPTIONS["w"])
    again = invert(generator, targets, ["a", "b"], method="w", seed=3, checkpoint=BatchCheckpoint(path), **OPTIONS["w"])
    assert torch.equal(again.reconstructions, whole.reconstructions)
    kept = tmp_path / "inflight.pt.refused"
    assert kept.read_bytes() == damaged  # nothing the user had is lost
    warnings = [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0] and str(path) in warnings[0]


def test_checkpoints_are_written_every_n_steps_and_not_after_the_last(generator, targets, tmp_path, monkeypatch):
    saved_at = []
    checkpoint = BatchCheckpoint(tmp_path / "inflight.pt", every=2)
    original = torch.save
    monkeypatch.setattr(
        torch, "save", lambda payload, stream: (saved_at.append(payload["global_step"]), original(payload, stream))
    )
    invert(generator, targets, ["a", "b"], method="w", seed=3, checkpoint=checkpoint, **OPTIONS["w"])
    assert saved_at == [2, 4]
