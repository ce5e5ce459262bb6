"""The editing notebook runs top to bottom on the demo prior (code cells, in one namespace)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run_notebook(path: Path) -> dict:
    namespace: dict = {"__name__": "__notebook__"}
    for index, cell in enumerate(json.loads(path.read_text())["cells"]):
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), f"{path.name}[cell {index}]", "exec"), namespace)
    return namespace


@pytest.mark.slow
def test_the_editing_notebook_runs_and_its_edits_hold():
    namespace = run_notebook(NOTEBOOKS / "editing.ipynb")
    brightness = namespace["walk"].mean(dim=(1, 2, 3))
    assert (brightness[2:-1] > brightness[1:-2]).all()  # brighter along the learned part of the walk
    frames, ends = namespace["frames"], namespace["ends"]
    assert (frames[0] - ends[0][0]).abs().max() <= 1e-5 and (frames[-1] - ends[1][0]).abs().max() <= 1e-5
    assert namespace["edited"].shape == (5, 3, 64, 64)
