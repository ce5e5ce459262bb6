"""Packaging beyond what setup.cfg can say: the top-level ``conf/`` ships inside the package.

The repository keeps its Hydra configs at the top (``conf/``), where users look for them; an
installed wheel carries the same tree as ``sphinx/conf`` (found by ``sphinx.configs``).
Everything else is declared in ``setup.cfg``.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["sphinx", "sphinx.*"]), "sphinx.conf"],
    package_dir={"sphinx.conf": "conf"},
    package_data={"sphinx": ["assets/*"], "sphinx.conf": ["**/*.yaml"]},
)
