"""Small inline-SVG charts drawn in Python: lines, dots, markers and stacked bars on linear axes.

No JavaScript and no network: the report opens anywhere, and the live view swaps in
fresh SVG from the server. Every drawn datum carries class `mark` (the tests count them)
and a <title> (the browser shows it on hover).
"""

from __future__ import annotations

import math
from html import escape
from typing import Iterable, Sequence

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac")
Point = Sequence[float]


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten) covering [low, high]."""
    if not math.isfinite(low) or not math.isfinite(high) or high <= low:
        return [low]
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    return [round(first + i * step, 12) for i in range(int((high - first) / step + 1e-9) + 1)]


def number(value: float | None) -> str:
    if value is None:
        return "-"
    if value == int(value) and abs(value) < 1e12:
        return str(int(value))
    return f"{value:.6g}"


class Chart:
    """One plot: add series, then `svg()`. Coordinates are data units; the chart maps them."""

    def __init__(self, name: str, x_label: str, y_label: str, width: int = 820, height: int = 260) -> None:
        self.name, self.x_label, self.y_label = name, x_label, y_label
        self.width, self.height = width, height
        self.left, self.right, self.top, self.bottom = 64, 150, 12, 40
        self.parts: list[tuple[str, object]] = []
        self.legend: list[tuple[str, str, str]] = []  # label, colour, shape
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.y_floor: float | None = None
        self.x_pad = 0.0  # fraction of the x range added on both sides (dots on the edge stay whole)
        self.integer_x = True  # counts on the x axis: no tick at 0.5

    # -------------------------------------------------------------- series

    def line(self, points: Sequence[Point], label: str, stroke: str, step: bool = True, extend_to: float | None = None,
             width: float = 2.0, legend: bool = True) -> None:
        if not points:
            return
        pts = [(float(x), float(y)) for x, y in points]
        if extend_to is not None and extend_to > pts[-1][0]:
            pts.append((float(extend_to), pts[-1][1]))
        self._track(pts)
        self.parts.append(("line", (pts, label, stroke, step, width)))
        if legend:
            self.legend.append((label, stroke, "line"))

    def dots(self, points: Sequence[Point], label: str, fill: str, titles: Sequence[str] | None = None,
             radius: float = 4.0, hollow: bool = False) -> None:
        pts = [(float(x), float(y)) for x, y in points if y is not None]
        if not pts:
            return
        self._track(pts)
        self.parts.append(("dots", (pts, fill, titles, radius, hollow)))
        self.legend.append((label, fill, "dot"))

    def rules(self, xs: Iterable[float], label: str, stroke: str, titles: Sequence[str] | None = None,
              dash: str = "4 3") -> None:
        """Vertical marker lines (migrations, resets, epochs, alarms)."""
        values = [float(x) for x in xs]
        if not values:
            return
        self.xs.extend(values)
        self.parts.append(("rules", (values, stroke, titles, dash)))
        self.legend.append((label, stroke, "rule"))

    def stacked(self, edges: Sequence[float], series: dict[str, Sequence[float]], colors: dict[str, str],
                share: bool = True) -> None:
        """Stacked bars, bar b spanning [edges[b], edges[b+1]]; `share`: each bar is the mix (0 to 1) of its slice."""
        if len(edges) < 2:
            return
        totals = [sum(values[b] for values in series.values()) for b in range(len(edges) - 1)]
        self.xs.extend([edges[0], edges[-1]])
        self.ys.extend([0.0, 1.0 if share else max(totals) if totals else 1.0])
        self.parts.append(("stacked", (edges, series, colors, totals if share else None)))
        for label in series:
            self.legend.append((label, colors[label], "box"))

    def _track(self, pts: list[tuple[float, float]]) -> None:
        self.xs.extend(p[0] for p in pts)
        self.ys.extend(p[1] for p in pts)

    # -------------------------------------------------------------- drawing

    @property
    def empty(self) -> bool:
        return not self.parts

    def svg(self) -> str:
        x0, x1 = self._span(self.xs, pad=self.x_pad)
        y0, y1 = self._span(self.ys + ([self.y_floor] if self.y_floor is not None else []), pad=0.06)
        plot_w = self.width - self.left - self.right
        plot_h = self.height - self.top - self.bottom

        def sx(x: float) -> float:
            return round(self.left + (x - x0) / (x1 - x0) * plot_w, 1)

        def sy(y: float) -> float:
            return round(self.top + plot_h - (y - y0) / (y1 - y0) * plot_h, 1)

        out = [f'<svg class="plot" data-plot="{escape(self.name)}" viewBox="0 0 {self.width} {self.height}" '
               f'width="100%" role="img" aria-label="{escape(self.name)}" xmlns="http://www.w3.org/2000/svg">']
        out.append(self._axes(x0, x1, y0, y1, sx, sy))
        for kind, spec in self.parts:
            out.append(getattr(self, f"_draw_{kind}")(spec, sx, sy, y0))
        out.append(self._legend())
        out.append("</svg>")
        return "".join(out)

    @staticmethod
    def _span(values: list[float], pad: float) -> tuple[float, float]:
        finite = [v for v in values if math.isfinite(v)]
        if not finite:
            return 0.0, 1.0
        low, high = min(finite), max(finite)
        if high == low:
            return low - 0.5, high + 0.5
        margin = (high - low) * pad
        return low - margin, high + margin

    def _axes(self, x0: float, x1: float, y0: float, y1: float, sx, sy) -> str:  # type: ignore[no-untyped-def]
        bottom = self.height - self.bottom
        parts = [f'<g class="axes" font-size="11" fill="#555">'
                 f'<line x1="{self.left}" y1="{bottom}" x2="{self.width - self.right}" y2="{bottom}" stroke="#999"/>'
                 f'<line x1="{self.left}" y1="{self.top}" x2="{self.left}" y2="{bottom}" stroke="#999"/>']
        for t in ticks(x0, x1, 8):
            if self.integer_x and t != int(t):
                continue
            parts.append(f'<text x="{sx(t)}" y="{bottom + 14}" text-anchor="middle">{number(t)}</text>')
        for t in ticks(y0, y1, 5):
            parts.append(f'<line x1="{self.left}" y1="{sy(t)}" x2="{self.width - self.right}" y2="{sy(t)}" '
                         f'stroke="#eee"/><text x="{self.left - 4}" y="{sy(t) + 4}" text-anchor="end">{number(t)}</text>')
        parts.append(f'<text x="{self.left + (self.width - self.left - self.right) / 2}" y="{self.height - 6}" '
                     f'text-anchor="middle">{escape(self.x_label)}</text>')
        parts.append(f'<text transform="translate(12 {self.top + (bottom - self.top) / 2}) rotate(-90)" '
                     f'text-anchor="middle">{escape(self.y_label)}</text></g>')
        return "".join(parts)

    def _draw_line(self, spec, sx, sy, _y0) -> str:  # type: ignore[no-untyped-def]
        pts, label, stroke, step, width = spec
        path = [f"M{sx(pts[0][0])},{sy(pts[0][1])}"]
        for (_, py), (x, y) in zip(pts, pts[1:]):
            if step:
                path.append(f"H{sx(x)}V{sy(y)}")
            else:
                path.append(f"L{sx(x)},{sy(y)}")
        return (f'<path class="mark" d="{"".join(path)}" fill="none" stroke="{stroke}" stroke-width="{width}">'
                f'<title>{escape(label)}</title></path>')

    def _draw_dots(self, spec, sx, sy, _y0) -> str:  # type: ignore[no-untyped-def]
        pts, fill, titles, radius, hollow = spec
        paint = f'fill="white" stroke="{fill}" stroke-width="2"' if hollow else f'fill="{fill}"'
        return "".join(
            f'<circle class="mark" cx="{sx(x)}" cy="{sy(y)}" r="{radius}" {paint}>'
            f'{f"<title>{escape(titles[i])}</title>" if titles else ""}</circle>'
            for i, (x, y) in enumerate(pts))

    def _draw_rules(self, spec, sx, _sy, _y0) -> str:  # type: ignore[no-untyped-def]
        xs, stroke, titles, dash = spec
        seen: set[int] = set()
        out = [f'<g stroke="{stroke}" stroke-dasharray="{dash}" stroke-width="1.2">']
        for i, x in enumerate(xs):
            px = sx(x)
            if int(px / 2) in seen:  # one line per two pixels: thousands of migrations stay a few kB
                continue
            seen.add(int(px / 2))
            title = f"<title>{escape(titles[i])}</title>" if titles else ""
            out.append(f'<line class="mark rule" x1="{px}" y1="{self.top}" x2="{px}" '
                       f'y2="{self.height - self.bottom}">{title}</line>')
        if len(out) > 80:  # dense markers: faint, so the lines under them stay readable
            out[0] = out[0].replace("<g ", '<g stroke-opacity="0.3" ', 1)
        return "".join(out) + "</g>"

    def _draw_stacked(self, spec, sx, sy, _y0) -> str:  # type: ignore[no-untyped-def]
        edges, series, colors, totals = spec
        out = []
        for b in range(len(edges) - 1):
            base = 0.0
            left, right = sx(edges[b]), sx(edges[b + 1])
            for label, values in series.items():
                count = values[b]
                if not count:
                    continue
                value = count / totals[b] if totals else count
                top = sy(base + value)
                out.append(f'<rect class="mark" x="{left}" y="{top}" width="{max(right - left - 0.5, 0.5)}" '
                           f'height="{round(sy(base) - top, 1)}" fill="{colors[label]}"><title>{escape(label)}: '
                           f'{number(count)} of {number(edges[b])}-{number(edges[b + 1])}</title></rect>')
                base += value
        return "".join(out)

    def _legend(self) -> str:
        x = self.width - self.right + 12
        out = ['<g class="legend" font-size="11">']
        for i, (label, paint, shape) in enumerate(self.legend[:16]):
            y = self.top + 8 + i * 16
            if shape == "line":
                out.append(f'<line x1="{x}" y1="{y}" x2="{x + 16}" y2="{y}" stroke="{paint}" stroke-width="2"/>')
            elif shape == "rule":
                out.append(f'<line x1="{x + 8}" y1="{y - 6}" x2="{x + 8}" y2="{y + 6}" stroke="{paint}" '
                           'stroke-dasharray="3 2"/>')
            elif shape == "dot":
                out.append(f'<circle cx="{x + 8}" cy="{y}" r="4" fill="{paint}"/>')
            else:
                out.append(f'<rect x="{x + 2}" y="{y - 5}" width="12" height="10" fill="{paint}"/>')
            out.append(f'<text x="{x + 22}" y="{y + 4}">{escape(label[:20])}</text>')
        out.append("</g>")
        return "".join(out)
