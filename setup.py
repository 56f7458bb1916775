"""Bundle the project's data folders into the wheel (the metadata is in pyproject.toml).

A wheel carries configs/, problems/, evaluators/ and sandbox/ under `evolve/_bundled`,
where evolve/paths.py finds them; an editable install uses the checkout's own folders.
`evaluators` is therefore never installed as a top-level package.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
BUNDLED = ("configs", "problems", "evaluators", "sandbox")


class BuildPyWithBundled(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # editable installs read the checkout's folders in place
        target = Path(self.build_lib) / "evolve" / "_bundled"
        for name in BUNDLED:
            destination = target / name
            if destination.exists():
                shutil.rmtree(destination)
            shutil.copytree(HERE / name, destination,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "runs"))


setup(cmdclass={"build_py": BuildPyWithBundled})
