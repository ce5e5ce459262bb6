"""The package imports cleanly, and its core stands without the framework layers."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # a subprocess importing torch and scipy (~6 s of CPU)
def test_scipy_stats_imports_after_sphinx_despite_the_name_clash():
    # scipy treats any loaded module named "sphinx" as the documentation tool.
    result = run_python("import sphinx.inversion, scipy.stats, torchmetrics; print('ok')")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_core_imports_without_lightning_hydra_omegaconf_or_wandb():
    blocked = ["pytorch_lightning", "lightning", "lightning_fabric", "hydra", "omegaconf", "wandb"]
    code = (
        "import sys\n"
        f"for name in {blocked!r}:\n"
        "    sys.modules[name] = None  # any import of it now raises ImportError\n"
        "import sphinx.generators, sphinx.inversion, sphinx.degradations, sphinx.metrics.lpips\n"
        "import sphinx.metrics.image_quality, sphinx.utils.download, sphinx.editing, sphinx.editing.media\n"
        "print('core ok')\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert "core ok" in result.stdout
