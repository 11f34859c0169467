"""Where capcal's own data folders (``tasks/``, ``templates/``, ``registry.yaml``) live.

In a wheel they are package data inside ``capcal/``; in an editable install from a source checkout they
are the top-level folders of the repository. Both layouts are looked up, wheel first.
"""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def resource_path(name: str) -> Path:
    """Return the path of a bundled resource (``"tasks"``, ``"templates"`` or ``"registry.yaml"``).

    Raises:
        FileNotFoundError: when neither layout has it (a broken install).
    """
    for candidate in (_PKG / name, _PKG.parent / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"capcal resource {name!r} is missing from the installation ({_PKG})")
