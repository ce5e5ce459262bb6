"""Packaging beyond what setup.cfg can say: the top-level ``conf/`` ships inside the package.

The repository keeps its Hydra configs at the top (``conf/``), where users look for them; a built
wheel carries the same tree as ``sphinx/conf`` (found by ``sphinx.configs``), copied there by
:class:`BuildWithConfigs`, and an sdist carries ``conf/`` through ``MANIFEST.in``.

Every package sits in the repository root, and ``package_dir`` says no more than that, so an
editable install (``pip install -e .``) is one path line in a ``.pth`` file, and the configs are
read from ``conf/`` in place. A path entry is what makes ``python -m sphinx.run`` work from the
parent folder of a clone named ``sphinx``: Python puts the working directory first on
``sys.path``, where the clone's folder is a namespace package ``sphinx``; a regular package found
on any later path entry wins over it, while setuptools' import hook (what it installs for any
other ``package_dir``) comes too late.
"""

from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithConfigs(build_py):
    """``build_py`` that also copies ``conf/**/*.yaml`` into the built package as ``sphinx/conf``."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return  # an editable install reads conf/ where it is (sphinx.configs)
        for source in sorted((ROOT / "conf").rglob("*.yaml")):
            target = Path(self.build_lib, "sphinx", source.relative_to(ROOT))
            self.mkpath(str(target.parent))
            self.copy_file(str(source), str(target))


setup(
    packages=find_packages(include=["sphinx", "sphinx.*"]),
    package_dir={"": "."},
    package_data={"sphinx": ["assets/*"]},
    cmdclass={"build_py": BuildWithConfigs},
)
