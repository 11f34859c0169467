"""A minimal line-chart builder that writes standalone inline SVG (no JavaScript, no external assets)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from html import escape

#: Ten colours that stay distinguishable for common colour-vision deficiencies (Tableau 10).
_CLIP_IDS = itertools.count()

PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
           "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]`` (steps of 1, 2 or 5 times a power of ten)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(s * mag for s in (1, 2, 5, 10) if s * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    count = int(math.floor((hi - first) / step + 1e-9)) + 1
    return [round(first + i * step, 12) for i in range(count)]


def _fmt_tick(v: float) -> str:
    return f"{v:g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.0e}"


@dataclass
class Chart:
    """An x-y chart with lines, shaded bands, markers and a legend on the right.

    Args:
        title: shown above the plot.
        xlabel, ylabel: axis titles.
        xlim, ylim: data ranges ``(lo, hi)`` mapped onto the plot area.
        logx: log2 x axis (for k and budgets that double); ticks at the powers of two in range.
        width, height: pixel size of the whole SVG, legend included.
        css_class: the ``class`` of the ``<svg>`` element (``"chart"``; the decision plots of routing and
            selective prediction use ``"decision-chart"``).
    """

    title: str
    xlabel: str
    ylabel: str
    xlim: tuple[float, float]
    ylim: tuple[float, float] = (0.0, 1.0)
    logx: bool = False
    width: int = 470
    height: int = 300
    css_class: str = "chart"
    _items: list[str] = field(default_factory=list)
    _legend: list[tuple[str, str, str | None]] = field(default_factory=list)

    # plot-area geometry
    left, right, top, bottom = 50, 130, 28, 44

    def _tx(self, x: float) -> float:
        lo, hi = self.xlim
        if self.logx:
            x, lo, hi = math.log2(x), math.log2(lo), math.log2(hi)
        frac = 0.5 if hi == lo else (x - lo) / (hi - lo)
        return self.left + frac * (self.width - self.left - self.right)

    def _ty(self, y: float) -> float:
        lo, hi = self.ylim
        frac = 0.5 if hi == lo else (y - lo) / (hi - lo)
        return self.height - self.bottom - frac * (self.height - self.top - self.bottom)

    def _segments(self, xs, ys) -> list[list[tuple[float, float]]]:
        """Split a series at missing values into runs of pixel points."""
        segs: list[list[tuple[float, float]]] = [[]]
        for x, y in zip(xs, ys, strict=True):
            if x is None or y is None or (self.logx and x <= 0):
                if segs[-1]:
                    segs.append([])
                continue
            segs[-1].append((self._tx(x), self._ty(y)))
        return [s for s in segs if s]

    def line(self, xs, ys, color: str, label: str | None = None, dash: str | None = None,
             width: float = 1.8, markers: bool = True, sizes=None) -> None:
        """A polyline through ``(xs, ys)`` (``None`` breaks it), with optional markers (radius ``sizes``)."""
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        name = escape(label or "")
        for seg in self._segments(xs, ys):
            pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in seg)
            self._items.append(f'<polyline class="series" data-series="{name}" points="{pts}" fill="none" '
                               f'stroke="{color}" stroke-width="{width}"{dash_attr}/>')
        if markers:
            sizes = sizes if sizes is not None else [3.0] * len(xs)
            for x, y, s in zip(xs, ys, sizes, strict=True):
                if x is None or y is None:
                    continue
                self._items.append(f'<circle cx="{self._tx(x):.1f}" cy="{self._ty(y):.1f}" r="{s:.1f}" '
                                   f'fill="{color}" fill-opacity="0.8"><title>{name}: ({_fmt_tick(x)}, '
                                   f'{y:.3f})</title></circle>')
        if label:
            self._legend.append((label, color, dash))

    def band(self, xs, lo, hi, color: str, opacity: float = 0.15) -> None:
        """A shaded region between ``lo`` and ``hi`` over ``xs`` (points with a missing bound are skipped)."""
        pts = [(x, a, b) for x, a, b in zip(xs, lo, hi, strict=True) if None not in (x, a, b)]
        if len(pts) < 2:
            return
        upper = [f"{self._tx(x):.1f},{self._ty(b):.1f}" for x, _, b in pts]
        lower = [f"{self._tx(x):.1f},{self._ty(a):.1f}" for x, a, _ in reversed(pts)]
        self._items.append(f'<polygon class="band" points="{" ".join(upper + lower)}" fill="{color}" '
                           f'fill-opacity="{opacity}" stroke="none"/>')

    def _axes(self) -> list[str]:
        x0, x1 = self.left, self.width - self.right
        y0, y1 = self.height - self.bottom, self.top
        out = [f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="#fff" stroke="#999"/>']
        if self.logx:
            first = math.ceil(math.log2(self.xlim[0]) - 1e-9)
            last = math.floor(math.log2(self.xlim[1]) + 1e-9)
            xt = [2.0**e for e in range(first, last + 1)]
        else:
            xt = nice_ticks(*self.xlim)
        for x in xt:
            px = self._tx(x)
            out.append(f'<line x1="{px:.1f}" y1="{y1}" x2="{px:.1f}" y2="{y0}" stroke="#eee"/>')
            out.append(f'<text x="{px:.1f}" y="{y0 + 14}" font-size="10" text-anchor="middle">{_fmt_tick(x)}</text>')
        for y in nice_ticks(*self.ylim):
            py = self._ty(y)
            out.append(f'<line x1="{x0}" y1="{py:.1f}" x2="{x1}" y2="{py:.1f}" stroke="#eee"/>')
            out.append(f'<text x="{x0 - 4}" y="{py + 3:.1f}" font-size="10" text-anchor="end">{_fmt_tick(y)}</text>')
        out.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{self.height - 8}" font-size="11" '
                   f'text-anchor="middle">{escape(self.xlabel)}</text>')
        out.append(f'<text transform="translate(12,{(y0 + y1) / 2:.1f}) rotate(-90)" font-size="11" '
                   f'text-anchor="middle">{escape(self.ylabel)}</text>')
        out.append(f'<text x="{x0}" y="{self.top - 10}" font-size="12" font-weight="bold">{escape(self.title)}</text>')
        return out

    def _legend_svg(self) -> list[str]:
        x = self.width - self.right + 10
        out = []
        for i, (label, color, dash) in enumerate(self._legend):
            y = self.top + 8 + 15 * i
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(f'<line x1="{x}" y1="{y}" x2="{x + 16}" y2="{y}" stroke="{color}" stroke-width="2"{dash_attr}/>')
            out.append(f'<text x="{x + 20}" y="{y + 3}" font-size="10">{escape(label[:18])}</text>')
        return out

    def to_svg(self) -> str:
        """The chart as an ``<svg>`` element string (with a ``<title>`` for accessibility)."""
        clip = f"capcal-clip-{next(_CLIP_IDS)}"
        x0, y1 = self.left, self.top
        w, h = self.width - self.left - self.right, self.height - self.top - self.bottom
        body = "".join(self._axes()) + (
            f'<clipPath id="{clip}"><rect x="{x0 - 4}" y="{y1 - 4}" width="{w + 8}" height="{h + 8}"/></clipPath>'
            f'<g clip-path="url(#{clip})">' + "".join(self._items) + "</g>") + "".join(self._legend_svg())
        return (f'<svg xmlns="http://www.w3.org/2000/svg" class="{self.css_class}" width="{self.width}" '
                f'height="{self.height}" viewBox="0 0 {self.width} {self.height}" role="img" '
                f'font-family="sans-serif"><title>{escape(self.title)}</title>'
                f'{body}</svg>')
