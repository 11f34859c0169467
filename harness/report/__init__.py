"""Leaderboard reports rendered from results documents: Markdown, CSV, JSON and a self-contained HTML page.

Example:
    >>> lb = load_leaderboard(["runs/a", "runs/b"])        # reads each RUN/results.json
    >>> print(render(lb, "md"))
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CapcalError
from ..jsonio import write_atomic
from .html import to_html
from .table import DEFAULT_METRICS, Cell, Leaderboard, Row, build_leaderboard, load_leaderboard
from .text import to_csv, to_json, to_markdown

#: Format name -> (renderer, file extension).
FORMATS = {"md": (to_markdown, "md"), "csv": (to_csv, "csv"), "json": (to_json, "json"), "html": (to_html, "html")}


def render(lb: Leaderboard, fmt: str = "md") -> str:
    """Render the leaderboard in ``fmt`` (``md``, ``csv``, ``json`` or ``html``)."""
    if fmt not in FORMATS:
        raise CapcalError(f"unknown leaderboard format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return FORMATS[fmt][0](lb)


def write_all(lb: Leaderboard, out_dir: str | Path, stem: str = "leaderboard") -> dict[str, Path]:
    """Write all four formats as ``out_dir/<stem>.{md,csv,json,html}``; returns ``{format: path}``."""
    out = Path(out_dir)
    paths = {}
    for fmt, (fn, ext) in FORMATS.items():
        paths[fmt] = out / f"{stem}.{ext}"
        write_atomic(paths[fmt], fn(lb))
    return paths


__all__ = ["DEFAULT_METRICS", "FORMATS", "Cell", "Leaderboard", "Row", "build_leaderboard", "load_leaderboard",
           "render", "to_csv", "to_html", "to_json", "to_markdown", "write_all"]
