"""The notebooks run top to bottom in a Jupyter kernel (nbclient) on the demo prior, and what
they show holds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def execute_notebook(name: str, report: str, cwd: Path, *, parameters: str) -> dict:
    """Execute every cell of ``notebooks/<name>`` in a fresh kernel, ``parameters`` (code) right
    after its cell tagged "parameters" as papermill injects them, then one more cell that prints
    ``report`` (a Python expression over the notebook's variables) as JSON; return it."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    (tagged,) = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])]
    notebook.cells.insert(tagged + 1, nbformat.v4.new_code_cell(parameters))
    notebook.cells.append(nbformat.v4.new_code_cell(f"import json\nprint(json.dumps({report}))"))
    # the kernel gets this worker's share of the cores: more threads than cores burn CPU spinning
    threads = str(torch.get_num_threads())
    nbclient.NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute(env={**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads})
    (printed,) = [output["text"] for output in notebook.cells[-1].outputs if output.get("name") == "stdout"]
    return json.loads(printed)


@pytest.mark.slow
def test_the_quickstart_notebook_reconstructs_re_renders_and_morphs_every_input(tmp_path):
    shown = execute_notebook(
        "quickstart.ipynb",
        """{
        "status": result.status,
        "psnr": psnr(result.reconstructions, targets).tolist(),
        "re_render": float((again - result.reconstructions).abs().max()),
        "first_frame": float((frames[0] - result.reconstructions[0]).abs().max()),
        "last_frame": float((frames[-1] - result.reconstructions[1]).abs().max()),
        "middle_moves": float((frames[2] - frames[0]).abs().mean()),
    }""",
        tmp_path,
        parameters="steps = 100",
    )
    assert shown["status"] == ["ok", "ok"] and min(shown["psnr"]) > 18
    assert shown["re_render"] == 0.0
    # The morph moves W+, the content input and the noise together: its ends are the reconstructions.
    assert shown["first_frame"] <= 1e-5 and shown["last_frame"] <= 1e-5
    assert shown["middle_moves"] > 0.05


@pytest.mark.slow
def test_the_editing_notebook_runs_and_its_edits_hold(tmp_path):
    shown = execute_notebook(
        "editing.ipynb",
        """{
        "brightness": walk.mean(dim=(1, 2, 3)).tolist(),
        "first_frame": float((frames[0] - ends[0][0]).abs().max()),
        "last_frame": float((frames[-1] - ends[1][0]).abs().max()),
        "edited_shape": list(edited.shape),
    }""",
        tmp_path,
        parameters="attribute_steps = 40\nmorph_steps = 30",
    )
    brightness = shown["brightness"]
    # brighter along the learned part of the walk
    assert all(later > earlier for earlier, later in zip(brightness[1:-2], brightness[2:-1]))
    assert shown["first_frame"] <= 1e-5 and shown["last_frame"] <= 1e-5
    assert shown["edited_shape"] == [5, 3, 64, 64]
