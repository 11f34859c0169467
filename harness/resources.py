"""Where capcal's own data folders (``tasks/``, ``templates/``, ``registry.yaml``) live.

In a wheel they are package data inside ``capcal/`` (the task specs at ``capcal/task_specs/``, apart from
the module ``capcal.tasks``); in a source checkout they are the top-level folders of the repository. Both
layouts are looked up, wheel first.
"""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent
#: The folder of each resource inside the installed package (where it differs from the repository's).
_IN_PACKAGE = {"tasks": "task_specs"}


def resource_path(name: str) -> Path:
    """Return the path of a bundled resource (``"tasks"``, ``"templates"`` or ``"registry.yaml"``).

    Raises:
        FileNotFoundError: when neither layout has it (a broken install).
    """
    for candidate in (_PKG / _IN_PACKAGE.get(name, name), _PKG.parent / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"capcal resource {name!r} is missing from the installation ({_PKG})")
