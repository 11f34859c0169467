"""Build glue: copy the top-level ``registry.yaml`` into the ``capcal`` package of the wheel.

Everything else is declared in ``pyproject.toml``.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithRegistry(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "capcal" / "registry.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        self.copy_file(str(Path(__file__).parent / "registry.yaml"), str(target))


setup(cmdclass={"build_py": BuildPyWithRegistry})
