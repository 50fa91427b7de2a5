"""Charts drawn on the server as inline SVG: no script, no library, no network."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28


def _n(value: float) -> str:
    return f"{value:.1f}"


def _label(moment: datetime, granularity: str) -> str:
    return f"{moment:%m-%d %H:00}" if granularity == "hour" else f"{moment:%Y-%m-%d}"


def _number(value: float, *, money: bool) -> str:
    if money:
        return f"${value:,.0f}"
    return f"{value:,.0f}"


def bar_chart(
    points: Sequence[dict],
    *,
    series: Sequence[tuple[str, str, str]],
    granularity: str,
    title: str,
    money: bool = False,
) -> SafeString:
    """Draw grouped bars: one group per point, one bar per (key, label, colour) of series."""
    values = [[float(p[key] or 0) for p in points] for key, _, _ in series]
    top = max([max(v, default=0) for v in values] + [0]) or 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    group_w = plot_w / max(len(points), 1)
    bar_w = max(group_w * 0.8 / len(series), 0.5)
    parts = [
        format_html(
            '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" role="img" '
            'aria-label="{}" class="chart">',
            WIDTH,
            HEIGHT,
            title,
        ),
        format_html("<title>{}</title>", title),
    ]
    # Gridlines at 0, ½ and the top, labelled.
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        parts.append(
            format_html(
                '<line x1="{}" x2="{}" y1="{}" y2="{}" class="grid"/>'
                '<text x="{}" y="{}" class="axis" text-anchor="end">{}</text>',
                LEFT,
                WIDTH - RIGHT,
                _n(y),
                _n(y),
                LEFT - 6,
                _n(y + 4),
                _number(top * fraction, money=money),
            )
        )
    for index, point in enumerate(points):
        x0 = LEFT + index * group_w + group_w * 0.1
        for number, (_key, label, colour) in enumerate(series):
            value = values[number][index]
            h = plot_h * value / top
            parts.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" fill="{}">'
                    "<title>{} {}: {}</title></rect>",
                    _n(x0 + number * bar_w),
                    _n(TOP + plot_h - h),
                    _n(bar_w),
                    _n(h),
                    colour,
                    _label(point["t"], granularity),
                    label,
                    _number(value, money=money) if money else f"{value:,.0f}",
                )
            )
    if points:
        for index in sorted({0, len(points) // 2, len(points) - 1}):
            x = LEFT + index * group_w + group_w / 2
            parts.append(
                format_html(
                    '<text x="{}" y="{}" class="axis" text-anchor="middle">{}</text>',
                    _n(x),
                    HEIGHT - 8,
                    _label(points[index]["t"], granularity),
                )
            )
    legend_x = LEFT + 8
    for _key, label, colour in series:
        parts.append(
            format_html(
                '<rect x="{}" y="{}" width="10" height="10" fill="{}"/>'
                '<text x="{}" y="{}" class="legend">{}</text>',
                legend_x,
                TOP,
                colour,
                legend_x + 14,
                TOP + 9,
                label,
            )
        )
        legend_x += 14 + 8 * len(label) + 16
    parts.append(mark_safe("</svg>"))
    return mark_safe("".join(str(p) for p in parts))  # each part escaped above


def sparkline_delta(current: float | Decimal | None, previous: float | Decimal | None) -> str:
    """Return the change from previous to current as a signed percentage, or ''."""
    if current is None or previous is None or not previous:
        return ""
    change = (float(current) - float(previous)) / abs(float(previous)) * 100
    return escape(f"{change:+.0f}%")
