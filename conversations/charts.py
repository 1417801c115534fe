"""Chart geometry for the dashboard's inline SVG.

Plain data in, plain shapes out: the template `dashboard/_chart.html` draws them, escapes every
label and puts the numbers in a table beside each chart. No JavaScript, no build step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

WIDTH = 640
HEIGHT = 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 30
PLOT_W = WIDTH - LEFT - RIGHT
PLOT_H = HEIGHT - TOP - BOTTOM
MAX_X_LABELS = 7
# Marks the unfinished last bucket (today, this hour) in tooltips and data tables.
SO_FAR = " (so far)"
IN_PROGRESS_LEGEND = "In progress (so far)"


def _svg_number(value: float) -> str:
    """Coordinates as plain strings: the template would otherwise localize every number."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


# Shapes are named tuples (cheap to make: a 90-day page has hundreds) whose coordinates are
# strings, formatted once by the helpers below when the shape is made.


class Rect(NamedTuple):
    x: str
    y: str
    width: str
    height: str
    css_class: str
    label: str = ""  # becomes the shape's <title> (a tooltip and a screen-reader name)


class Text(NamedTuple):
    x: str
    y: str
    text: str
    anchor: str = "middle"
    css_class: str = ""


class Path(NamedTuple):
    d: str
    css_class: str


class Marker(NamedTuple):
    """A moment on the time axis (an annotation): a dashed vertical line with its number on top,
    linked to its impact page."""

    x: str
    number: str
    label: str  # its <title>: the annotation's time, kind and title
    url: str


class Dot(NamedTuple):
    x: str
    y: str
    css_class: str
    label: str


def _rect(x: float, y: float, width: float, height: float, css_class: str, label: str = "") -> Rect:
    return Rect(_svg_number(x), _svg_number(y), _svg_number(width), _svg_number(height), css_class, label)


def _text(x: float, y: float, text: str, anchor: str = "middle", css_class: str = "") -> Text:
    return Text(_svg_number(x), _svg_number(y), text, anchor, css_class)


@dataclass
class Chart:
    slug: str
    title: str
    description: str
    width: int = WIDTH
    height: int = HEIGHT
    rects: list[Rect] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    dots: list[Dot] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    gridlines: list[str] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (css class, label)
    table_headers: list[str] = field(default_factory=list)
    table_rows: list[list[str]] = field(default_factory=list)
    partial_note: str = ""  # shown (and read out) when the last bucket is unfinished


def _mark_partial(labels: list[str], in_progress: str) -> list[str]:
    """The labels for titles and tables, the unfinished last bucket's saying so."""
    if not in_progress or not labels:
        return labels
    return [*labels[:-1], labels[-1] + SO_FAR]


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k that is at least `value` (1 for empty data)."""
    if value <= 0:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def _y(value: float, low: float, high: float) -> float:
    return TOP + PLOT_H - (value - low) / (high - low) * PLOT_H


def _format_tick(value: float, unit: str) -> str:
    if abs(value) >= 10_000:
        number = f"{value / 1000:,.0f}k"  # axis labels stay short enough for the margin
    else:
        number = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
    return f"{unit}{number}" if unit in {"$", "€", "£"} else f"{number}{unit}"


def _y_axis(chart: Chart, low: float, high: float, *, unit: str = "") -> None:
    # 4 steps for ranges led by 1 or 2 (25, 50, ...), 5 for 2.5 and 5 (50, 100, ...).
    span = high - low
    lead = span / 10 ** math.floor(math.log10(span))
    ticks = 5 if math.isclose(lead, 2.5) or math.isclose(lead, 5) else 4
    for index in range(ticks + 1):
        value = low + (high - low) * index / ticks
        y = _y(value, low, high)
        chart.gridlines.append(_svg_number(y))
        chart.texts.append(_text(LEFT - 6, round(y + 4, 1), _format_tick(value, unit), "end", "tick"))


def _x_labels(chart: Chart, labels: list[str], slot: float) -> None:
    if not labels:
        return
    every = max(1, math.ceil(len(labels) / MAX_X_LABELS))
    for index in range(0, len(labels), every):
        x = LEFT + slot * (index + 0.5)
        chart.texts.append(_text(round(x, 1), HEIGHT - 10, labels[index], "middle", "tick"))


def stacked_bars(
    *,
    slug: str,
    title: str,
    description: str,
    labels: list[str],
    series: list[tuple[str, str, list[int]]],
    in_progress: str = "",
) -> Chart:
    """Vertical bars, one per bucket, stacking the series bottom-up (e.g. resolved, escalated).

    in_progress: the bucket's unit ("day", "hour") when the last bucket is unfinished; its bar
    is then hatched (the page's `partial-hatch` pattern), so that it does not read as a drop.
    """
    chart = Chart(slug, title, description, legend=[(css, name) for name, css, _ in series])
    totals = [sum(values[i] for _, _, values in series) for i in range(len(labels))]
    high = nice_ceiling(max(totals, default=0))
    _y_axis(chart, 0, high)
    slot = PLOT_W / max(len(labels), 1)
    bar_width = max(slot * 0.8, 1)

    def bar_x(index: int) -> float:
        return round(LEFT + slot * index + (slot - bar_width) / 2, 2)

    named = _mark_partial(labels, in_progress)
    for index, label in enumerate(named):
        bottom = 0
        for name, css, values in series:
            value = values[index]
            if value:
                y_top = _y(bottom + value, 0, high)
                chart.rects.append(
                    _rect(
                        bar_x(index),
                        round(y_top, 2),
                        round(bar_width, 2),
                        round(_y(bottom, 0, high) - y_top, 2),
                        css,
                        f"{label}: {value:,} {name.lower()}",
                    )
                )
            bottom += value
    if in_progress and labels:
        last = len(labels) - 1
        if totals[last]:
            y_top = _y(totals[last], 0, high)
            chart.rects.append(
                _rect(
                    bar_x(last),
                    round(y_top, 2),
                    round(bar_width, 2),
                    round(_y(0, 0, high) - y_top, 2),
                    "partial-hatch",
                )
            )
        chart.legend.append(("partial-hatch", IN_PROGRESS_LEGEND))
        chart.partial_note = f"Latest {in_progress} is still in progress (hatched bar: so far)."
    _x_labels(chart, labels, slot)
    chart.table_headers = ["Period", *(name for name, _, _ in series), "Total"]
    chart.table_rows = [
        [label, *(f"{values[i]:,}" for _, _, values in series), f"{totals[i]:,}"]
        for i, label in enumerate(named)
    ]
    return chart


def line(
    *,
    slug: str,
    title: str,
    description: str,
    labels: list[str],
    values: list[Decimal | None],
    low: float | None = None,
    high: float | None = None,
    unit: str = "",
    band: tuple[float, float] | None = None,
    band_label: str = "",
    value_header: str = "Value",
    format_value: Callable[[Decimal], str] = str,
    in_progress: str = "",
    intervals: list[list[Decimal] | None] | None = None,
    samples: list[int] | None = None,
    faint_below: int = 0,
    sample_noun: str = "conversations",
) -> Chart:
    """A line over the buckets; a None value (an empty bucket) leaves a gap in the line.

    in_progress: the bucket's unit ("day", "hour") when the last bucket is unfinished; the
    line's last step is then dashed and its dot hollow.
    intervals: each bucket's 95% interval ([low, high] or None), drawn as a shaded band
    around the line and listed in the data table.
    samples: what each bucket's value is computed over (its conversations, its ratings);
    a bucket with fewer than `faint_below` is drawn faint, and the steps to it too: a rate over
    a handful is not a trend.
    """
    chart = Chart(slug, title, description, legend=[("series-line", value_header)])
    known = [float(value) for value in values if value is not None]
    if low is None:
        low = min(0.0, *known) if known else 0.0
    if high is None:
        high = nice_ceiling(max(known, default=0))
    if high <= low:
        high = low + 1
    _y_axis(chart, low, high, unit=unit)
    if band:
        y_top, y_bottom = _y(band[1], low, high), _y(band[0], low, high)
        chart.rects.append(
            _rect(LEFT, round(y_top, 2), PLOT_W, round(y_bottom - y_top, 2), "band", band_label)
        )
        chart.legend.append(("band", band_label))
    slot = PLOT_W / max(len(labels), 1)

    def x_of(index: int) -> float:
        return round(LEFT + slot * (index + 0.5), 2)

    if intervals is not None:
        _interval_bands(chart, intervals, x_of=x_of, y_of=lambda value: round(_y(float(value), low, high), 2))
    faint = [samples is not None and value is not None and samples[index] < faint_below
             for index, value in enumerate(values)]  # fmt: skip
    shown = ["no data" if value is None else format_value(value) for value in values]
    named = _mark_partial(labels, in_progress)
    partial_index = len(labels) - 1 if in_progress else None
    # Each step between two known values, classed by its ends: the unfinished last bucket
    # dashes it, a faint end fades it. Consecutive steps of one class make one path.
    steps: list[tuple[str, list[tuple[float, float]]]] = []
    previous: tuple[int, tuple[float, float]] | None = None
    for index, (label, value) in enumerate(zip(named, values, strict=True)):
        if value is None:
            previous = None
            continue
        point = (x_of(index), round(_y(float(value), low, high), 2))
        classes = ["series-dot"]
        if index == partial_index:
            classes.append("partial")
        title = f"{label}: {shown[index]}"
        if samples is not None:
            title += f" ({samples[index]:,} {sample_noun})"
        if faint[index]:
            classes.append("faint")
            title += f": under {faint_below}, not a trend"
        chart.dots.append(Dot(_svg_number(point[0]), _svg_number(point[1]), " ".join(classes), title))
        if previous is not None:
            before, start = previous
            css = "series-line"
            if index == partial_index:
                css += " partial"
            if faint[before] or faint[index]:
                css += " faint"
            if steps and steps[-1][0] == css and steps[-1][1][-1] == start:
                steps[-1][1].append(point)
            else:
                steps.append((css, [start, point]))
        previous = (index, point)
    chart.paths.extend(Path(_path_d(points), css) for css, points in steps)
    if intervals is not None:
        chart.legend.append(("ci-band", "95% interval"))
    if any(faint):
        chart.legend.append(("faint-line", f"Under {faint_below} {sample_noun}: faint"))
    if in_progress and labels:
        chart.legend.append(("partial-line", IN_PROGRESS_LEGEND))
        chart.partial_note = f"Latest {in_progress} is still in progress (dashed line: so far)."
    _x_labels(chart, labels, slot)
    chart.table_headers = ["Period", value_header]
    chart.table_rows = [[label, text] for label, text in zip(named, shown, strict=True)]
    if intervals is not None:
        chart.table_headers.append("95% interval")
        for row, interval in zip(chart.table_rows, intervals, strict=True):
            row.append(
                "—" if interval is None else f"{format_value(interval[0])} – {format_value(interval[1])}"
            )
    if samples is not None:
        chart.table_headers.append(sample_noun.capitalize())
        for row, sample in zip(chart.table_rows, samples, strict=True):
            row.append(f"{sample:,}")
    return chart


def _interval_bands(
    chart: Chart,
    intervals: list[list[Decimal] | None],
    *,
    x_of: Callable[[int], float],
    y_of: Callable[[Decimal], float],
) -> None:
    """One shaded area per run of buckets with an interval: along the upper bounds, back along
    the lower ones. A lone bucket's interval is a short vertical bar."""
    runs: list[list[int]] = [[]]
    for index, interval in enumerate(intervals):
        if interval is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append(index)
    half_bar = 2.0
    for run in runs:
        if not run:
            continue
        if len(run) == 1:
            [index] = run
            x, (low, high) = x_of(index), intervals[index]
            upper = [(round(x - half_bar, 2), y_of(high)), (round(x + half_bar, 2), y_of(high))]
            lower = [(round(x + half_bar, 2), y_of(low)), (round(x - half_bar, 2), y_of(low))]
        else:
            upper = [(x_of(index), y_of(intervals[index][1])) for index in run]
            lower = [(x_of(index), y_of(intervals[index][0])) for index in reversed(run)]
        chart.paths.append(Path(_path_d(upper + lower) + " Z", "ci-band"))


def add_markers(chart: Chart, markers: list[tuple[float, str, str]], *, buckets: int) -> None:
    """Marks moments on a time-series chart of `buckets` buckets: each (position, label, url),
    the position in buckets from the first one's start (2.5: halfway through the third).
    Numbered 1, 2, ... in the order given (the page lists them under the charts)."""
    slot = PLOT_W / max(buckets, 1)
    for number, (position, label, url) in enumerate(markers, start=1):
        x = LEFT + slot * min(max(position, 0), buckets)
        chart.markers.append(Marker(_svg_number(round(x, 2)), str(number), label, url))
    if markers:
        chart.legend.append(("marker", "Annotation (numbered below the charts)"))


def _path_d(points: list[tuple[float, float]]) -> str:
    return "M" + " L".join(f"{x},{y}" for x, y in points)


def horizontal_bars(
    *,
    slug: str,
    title: str,
    description: str,
    items: list[tuple[str, int]],
    css_class: str,
    value_header: str,
) -> Chart:
    """One labelled bar per item, longest first as given (e.g. topics, CSAT scores)."""
    row_height = 24
    label_width = 170
    height = TOP + BOTTOM // 2 + row_height * max(len(items), 1)
    chart = Chart(slug, title, description, height=height)
    high = nice_ceiling(max((count for _, count in items), default=0))
    bar_space = WIDTH - label_width - RIGHT - 56
    for index, (name, count) in enumerate(items):
        y = TOP + index * row_height
        length = bar_space * count / high
        shown = name if len(name) <= 24 else name[:23] + "…"
        chart.texts.append(_text(label_width - 8, y + 16, shown, "end", "label"))
        if count:
            chart.rects.append(
                _rect(label_width, y + 4, round(length, 2), 16, css_class, f"{name}: {count:,}")
            )
        chart.texts.append(_text(round(label_width + length + 6, 2), y + 16, f"{count:,}", "start", "value"))
    chart.table_headers = ["", value_header]
    chart.table_rows = [[name, f"{count:,}"] for name, count in items]
    return chart
