"""Inline SVG charts for the KPI report: small, dependency-free, every text escaped.

Each chart is a pure function of its points and returns SVG markup as a string, or a short
"暂无数据" paragraph when there is nothing to draw. The y axis always starts at 0: the report's
series (incomes, rates, revenues) are non-negative, and a truncated axis would exaggerate change.
Points computed from incomplete data (coverage < 1) are drawn hollow / pale and say so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 560, 280
LEFT, RIGHT, TOP, BOTTOM = 72, 24, 40, 48
COLOUR = "#1f6f8b"
PALE = "#b9d3dc"
EMPTY_HTML = '<p class="empty">暂无数据</p>'


@dataclass(frozen=True)
class Point:
    """One year of a series: ``value`` in display units, ``label`` its formatted text."""

    year: int
    value: float
    label: str
    incomplete: bool = False


@dataclass(frozen=True)
class Break:
    """A break in a series between ``after_year`` and the next: a boundary reform or a change of
    definition (口径). Drawn as a dashed line with ``label``; the line is not joined across it."""

    after_year: int
    label: str


def _breaks_within(points: Sequence[Point], breaks: Sequence[Break]) -> list[Break]:
    if not points:
        return []
    first, last = points[0].year, points[-1].year
    labels: dict[int, list[str]] = {}
    for brk in breaks:  # two breaks in one place (a reform and a new definition) are one line, two labels
        if first <= brk.after_year < last and brk.label not in labels.get(brk.after_year, []):
            labels.setdefault(brk.after_year, []).append(brk.label)
    return [Break(year, "；".join(texts)) for year, texts in sorted(labels.items())]


def _segments(points: Sequence[Point], breaks: Sequence[Break]) -> list[list[int]]:
    """Indices of ``points`` in runs that no break separates."""
    cuts = sorted(b.after_year for b in breaks)
    runs: list[list[int]] = [[]]
    for i, point in enumerate(points):
        if runs[-1] and any(points[runs[-1][-1]].year <= cut < point.year for cut in cuts):
            runs.append([])
        runs[-1].append(i)
    return runs


def _break_marks(x: float, label: str, top: float, bottom: float, *, small: bool = False, row: int = 0) -> list[str]:
    """The dashed line at ``x`` and its label: beside the line on the side with room (a break late in
    the series is labelled to its left, so the label stays inside the chart), one line lower for
    each earlier break of the chart (``row``), so two labels never overlap."""
    mark = (
        f'<line class="break-marker" x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" '
        f'stroke="#b5482a" stroke-width="1.5" stroke-dasharray="4 3"><title>{escape(label)}</title></line>'
    )
    if small:
        return [mark]
    right_half = x > WIDTH / 2
    text = _text(x - 3 if right_half else x + 3, top + 26 + 14 * row, label,
                 anchor="end" if right_half else "start", cls="break-label")
    # a white halo keeps the label legible where it crosses the series or a value label
    return [mark, text.replace("<text ", '<text stroke="#fff" stroke-width="3" paint-order="stroke" ', 1)]


def nice_ticks(maximum: float, count: int = 4) -> list[float]:
    """Ticks from 0 to at least ``maximum`` in steps of 1, 2, 2.5 or 5 × 10^k."""
    if not maximum > 0:
        return [0.0, 1.0]
    raw = maximum / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    steps = math.ceil(maximum / step - 1e-9)
    return [i * step for i in range(steps + 1)]


def _tick_text(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:g}"


def _y(value: float, top_tick: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / top_tick)


def _text(x: float, y: float, content: str, *, anchor: str = "middle", cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="12"{klass}>{escape(content)}</text>'
    )


def _axes(ticks: Sequence[float], y_label: str, x_label: str = "年份") -> list[str]:
    x0, x1, y_bottom = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM
    parts: list[str] = []
    for tick in ticks:
        y = _y(tick, ticks[-1])
        parts.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#e3e3e3"/>')
        parts.append(_text(x0 - 6, y + 4, _tick_text(tick), anchor="end"))
    parts.append(f'<line x1="{x0}" y1="{TOP - 8}" x2="{x0}" y2="{y_bottom}" stroke="#555"/>')
    parts.append(f'<line x1="{x0}" y1="{y_bottom}" x2="{x1}" y2="{y_bottom}" stroke="#555"/>')
    parts.append(_text(x0 - 6, TOP - 16, y_label, anchor="start", cls="axis-label"))
    parts.append(_text((x0 + x1) / 2, HEIGHT - 8, x_label, cls="axis-label"))
    return parts


def _svg(title: str, body: list[str], points: Sequence[Point]) -> str:
    if any(p.incomplete for p in points):
        body.append(_text(WIDTH - RIGHT, 16, "空心点/浅色柱：数据不完整", anchor="end", cls="note"))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" class="chart">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def _line_xs(points: Sequence[Point]) -> list[float]:
    """x proportional to the year, so gaps between years (2011 … 2014) show as gaps."""
    inner_left, inner_right = LEFT + 32, WIDTH - RIGHT - 32
    first, last = points[0].year, points[-1].year
    if first == last:
        return [(inner_left + inner_right) / 2]
    span = inner_right - inner_left
    return [inner_left + span * (p.year - first) / (last - first) for p in points]


def line_chart(points: Sequence[Point], *, title: str, y_label: str, breaks: Sequence[Break] = ()) -> str:
    """A line chart of ``points`` (sorted by year), labelled with each point's formatted value;
    each of ``breaks`` within the years drawn as a dashed line, the series not joined across it."""
    if not points:
        return EMPTY_HTML
    points = sorted(points, key=lambda p: p.year)
    ticks = nice_ticks(max(p.value for p in points))
    xs = _line_xs(points)
    ys = [_y(p.value, ticks[-1]) for p in points]
    body = _axes(ticks, y_label)
    shown = _breaks_within(points, breaks)
    for run in _segments(points, shown):
        path = " ".join(f"{xs[i]:.1f},{ys[i]:.1f}" for i in run)
        body.append(f'<polyline points="{path}" fill="none" stroke="{COLOUR}" stroke-width="2"/>')
    first, last = points[0].year, points[-1].year
    for row, brk in enumerate(shown):
        x = xs[0] + (xs[-1] - xs[0]) * (brk.after_year + 0.5 - first) / (last - first)
        body += _break_marks(x, brk.label, TOP - 8, HEIGHT - BOTTOM, row=row)
    for point, x, y in zip(points, xs, ys, strict=True):
        fill = "#fff" if point.incomplete else COLOUR
        body.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{fill}" stroke="{COLOUR}" stroke-width="2"/>'
        )
        body.append(_text(x, y - 10, point.label, cls="value"))
        body.append(_text(x, HEIGHT - BOTTOM + 18, str(point.year)))
    return _svg(title, body, points)


def bar_chart(points: Sequence[Point], *, title: str, y_label: str, breaks: Sequence[Break] = ()) -> str:
    """A bar chart of ``points``, one evenly spaced bar per year; ``breaks`` as dashed lines between bars."""
    if not points:
        return EMPTY_HTML
    points = sorted(points, key=lambda p: p.year)
    ticks = nice_ticks(max(p.value for p in points))
    slot = (WIDTH - RIGHT - LEFT) / len(points)
    bar = min(48.0, slot * 0.6)
    base = HEIGHT - BOTTOM
    body = _axes(ticks, y_label)
    for i, point in enumerate(points):
        centre = LEFT + slot * (i + 0.5)
        top = _y(max(point.value, 0.0), ticks[-1])
        fill = PALE if point.incomplete else COLOUR
        body.append(
            f'<rect x="{centre - bar / 2:.1f}" y="{top:.1f}" width="{bar:.1f}" '
            f'height="{base - top:.1f}" fill="{fill}"/>'
        )
        body.append(_text(centre, top - 6, point.label, cls="value"))
        body.append(_text(centre, base + 18, str(point.year)))
    for row, brk in enumerate(_breaks_within(points, breaks)):
        after = max(i for i, p in enumerate(points) if p.year <= brk.after_year)
        body += _break_marks(LEFT + slot * (after + 1), brk.label, TOP - 8, base, row=row)
    return _svg(title, body, points)


def grouped_bar_chart(series: Sequence[tuple[str, Sequence[Point]]], *, title: str, y_label: str) -> str:
    """Bars of several series side by side per year (e.g. job-fair posts vs hires), with a legend."""
    years = sorted({p.year for _, points in series for p in points})
    if not years:
        return EMPTY_HTML
    colours = (COLOUR, "#e07b39", "#6a8d3a", "#8e5ea2")
    ticks = nice_ticks(max(p.value for _, points in series for p in points))
    slot = (WIDTH - RIGHT - LEFT) / len(years)
    bar = min(28.0, slot * 0.8 / len(series))
    base = HEIGHT - BOTTOM
    body = _axes(ticks, y_label)
    for s, (name, points) in enumerate(series):
        colour = colours[s % len(colours)]
        body.append(f'<rect x="{LEFT + 8 + 110 * s}" y="6" width="10" height="10" fill="{colour}"/>')
        body.append(_text(LEFT + 22 + 110 * s, 15, name, anchor="start", cls="legend"))
        for point in points:
            i = years.index(point.year)
            x = LEFT + slot * i + slot / 2 - bar * len(series) / 2 + bar * s
            top = _y(max(point.value, 0.0), ticks[-1])
            fill = PALE if point.incomplete else colour
            body.append(
                f'<rect x="{x:.1f}" y="{top:.1f}" width="{bar - 2:.1f}" height="{base - top:.1f}" fill="{fill}"'
                f' stroke="{colour}"/>'
            )
            body.append(_text(x + bar / 2, top - 4, point.label, cls="value small"))
    for i, year in enumerate(years):
        body.append(_text(LEFT + slot * (i + 0.5), base + 18, str(year)))
    return _svg(title, body, [p for _, points in series for p in points])


def category_bar_chart(
    categories: Sequence[str], series: Sequence[tuple[str, Sequence[tuple[float, str]]]], *, title: str,
    y_label: str, x_label: str,
) -> str:
    """Bars of one or more series side by side per category (not a year: a snapshot month, a
    certificate level); ``series`` is (name, [(value, label) per category]). A legend when more
    than one series."""
    if not categories or not series or not any(v for _, values in series for v, _ in values):
        return EMPTY_HTML
    colours = (COLOUR, "#e07b39", "#6a8d3a", "#8e5ea2")
    ticks = nice_ticks(max(v for _, values in series for v, _ in values))
    slot = (WIDTH - RIGHT - LEFT) / len(categories)
    bar = min(48.0 if len(series) == 1 else 36.0, slot * 0.8 / len(series))
    base = HEIGHT - BOTTOM
    body = _axes(ticks, y_label, x_label)
    for s, (name, values) in enumerate(series):
        colour = colours[s % len(colours)]
        if len(series) > 1:
            body.append(f'<rect x="{LEFT + 8 + 130 * s}" y="6" width="10" height="10" fill="{colour}"/>')
            body.append(_text(LEFT + 22 + 130 * s, 15, name, anchor="start", cls="legend"))
        for i, (value, label) in enumerate(values):
            x = LEFT + slot * i + slot / 2 - bar * len(series) / 2 + bar * s
            top = _y(max(value, 0.0), ticks[-1])
            body.append(f'<rect x="{x:.1f}" y="{top:.1f}" width="{bar - 2:.1f}" height="{base - top:.1f}" '
                        f'fill="{colour}"/>')
            body.append(_text(x + bar / 2 - 1, top - 4, label, cls="value small"))
    for i, category in enumerate(categories):
        body.append(_text(LEFT + slot * (i + 0.5), base + 18, category))
    return _svg(title, body, [])


SPARK_WIDTH, SPARK_HEIGHT, SPARK_PAD = 180, 64, 6


def sparkline(points: Sequence[Point], *, title: str, top: float, breaks: Sequence[Break] = ()) -> str:
    """A small-multiple: the series on a shared y scale 0 … ``top``, the last value written;
    ``breaks`` as dashed lines, the line not joined across them."""
    if not points:
        return '<p class="empty small">暂无数据</p>'
    points = sorted(points, key=lambda p: p.year)
    top = top if top > 0 else 1.0
    first, last = points[0].year, points[-1].year
    span = max(last - first, 1)
    inner = SPARK_WIDTH - 2 * SPARK_PAD - 40

    def xy(p: Point) -> tuple[float, float]:
        x = SPARK_PAD + inner * ((p.year - first) / span if last != first else 0.5)
        y = SPARK_PAD + (SPARK_HEIGHT - 2 * SPARK_PAD - 12) * (1 - max(p.value, 0.0) / top)
        return x, y

    coords = [xy(p) for p in points]
    shown = _breaks_within(points, breaks)
    body = []
    for run in _segments(points, shown):
        path = " ".join(f"{coords[i][0]:.1f},{coords[i][1]:.1f}" for i in run)
        body.append(f'<polyline points="{path}" fill="none" stroke="{COLOUR}" stroke-width="1.5"/>')
    for brk in shown:
        x = SPARK_PAD + inner * (brk.after_year + 0.5 - first) / span
        body += _break_marks(x, brk.label, SPARK_PAD, SPARK_HEIGHT - 14, small=True)
    for p, (x, y) in zip(points, coords, strict=True):
        fill = "#fff" if p.incomplete else COLOUR
        body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{fill}" stroke="{COLOUR}"/>')
    lx, ly = coords[-1]
    body.append(_text(lx + 4, ly + 4, points[-1].label, anchor="start", cls="value small"))
    body.append(_text(SPARK_PAD, SPARK_HEIGHT - 2, str(first), anchor="start", cls="small"))
    if last != first:
        body.append(_text(SPARK_PAD + inner, SPARK_HEIGHT - 2, str(last), anchor="middle", cls="small"))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {SPARK_WIDTH} {SPARK_HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" class="spark"><title>{escape(title)}</title>{"".join(body)}</svg>'
    )
