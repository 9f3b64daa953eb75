"""The job page's run-history chart, drawn as inline SVG on the server.

No script and no chart library: bars are run durations (left axis, ms), the line is row
counts (right axis), oldest run on the left. Each axis is titled and has ticks; every bar
and point carries its values as an SVG ``<title>``, which browsers show on hover and
screen readers read. The template draws the shapes computed here; CSS classes colour them
(the CSP forbids inline styles).

The SVG has no ``viewBox``, so nothing in it is scaled: its labels are as many CSS pixels
tall at 320 px as at 1280 px (a scaled 640-unit drawing put 6 px labels on a phone). The
stylesheet gives the ``<svg>`` a fixed height and paddings of ``LEFT``, ``RIGHT``, ``PAD``
and ``BOTTOM`` pixels; its viewport is the plot area inside them, where horizontal
positions are percentages of the plot's width and vertical ones pixels from its top.
Ticks and titles sit in the padding, outside the viewport.
"""

from __future__ import annotations

from itertools import pairwise

import attrs

from dancecat_core.models import Tracker, TrackerStatus

HEIGHT = 120  # the plot area's; the stylesheet adds PAD above and BOTTOM below
PAD = 24
LEFT = 64  # room for the duration ticks and the axis title
RIGHT = 56  # room for the row ticks and the axis title
BOTTOM = 36  # room for the first and last run ids and the x axis title
# Bars take 60 % of their run's share of the width, and never more than they would with
# this many runs: two runs are two bars, not two walls.
BAR_SHARE = 0.6
MIN_SLOTS = 16
TICKS = 3


@attrs.frozen
class Bar:
    x: float  # percent of the plot's width
    y: float
    width: float  # percent
    height: float
    failed: bool
    label: str


@attrs.frozen
class Point:
    x: float  # percent
    y: float
    label: str = ""


@attrs.frozen
class Segment:
    """One stretch of the rows line (a polyline cannot take percentages)."""

    x1: float
    y1: float
    x2: float
    y2: float


@attrs.frozen
class Tick:
    y: float
    text: str


@attrs.frozen
class Chart:
    bars: list[Bar]
    segments: list[Segment]
    points: list[Point]
    max_ms: int
    max_rows: int
    ms_ticks: list[Tick]
    row_ticks: list[Tick]
    first_run: int
    last_run: int
    height: int = HEIGHT
    left: int = LEFT
    right: int = RIGHT
    bottom: int = BOTTOM


def _ticks(top: int, count: int = TICKS) -> list[Tick]:
    """``count`` + 1 evenly spaced values from 0 to ``top``, bottom to top of the plot."""
    return [
        Tick(round(HEIGHT - HEIGHT * step / count, 1), f"{round(top * step / count):,}")
        for step in range(count + 1)
    ]


def run_chart(runs: list[Tracker]) -> Chart | None:
    """A chart of the finished runs in ``runs`` (newest first, as listed), or ``None``."""
    finished = [tracker for tracker in reversed(runs) if tracker.duration_ms is not None]
    if not finished:
        return None
    max_ms = max(tracker.duration_ms or 0 for tracker in finished) or 1
    max_rows = max(tracker.row_count or 0 for tracker in finished) or 1
    slot = 100 / len(finished)
    bar_width = min(slot, 100 / MIN_SLOTS) * BAR_SHARE
    bars: list[Bar] = []
    points: list[Point] = []
    for index, tracker in enumerate(finished):
        height = max(1.0, HEIGHT * (tracker.duration_ms or 0) / max_ms)
        middle = (index + 0.5) * slot
        rows = f"{tracker.row_count:,}" if tracker.row_count is not None else "no"
        label = f"Run {tracker.id}: {tracker.duration_ms:,} ms, {rows} rows, {tracker.status}"
        bars.append(
            Bar(
                x=round(middle - bar_width / 2, 3),
                y=round(HEIGHT - height, 1),
                width=round(bar_width, 3),
                height=round(height, 1),
                failed=tracker.status != TrackerStatus.SUCCESS.value
                and tracker.status != TrackerStatus.RESULT_EXPIRED.value,
                label=label,
            )
        )
        row_y = HEIGHT - HEIGHT * (tracker.row_count or 0) / max_rows
        points.append(Point(round(middle, 3), round(row_y, 1), f"Run {tracker.id}: {rows} rows"))
    segments = [Segment(a.x, a.y, b.x, b.y) for a, b in pairwise(points)]
    return Chart(
        bars=bars,
        segments=segments,
        points=points,
        max_ms=max_ms,
        max_rows=max_rows,
        ms_ticks=_ticks(max_ms),
        row_ticks=_ticks(max_rows),
        first_run=finished[0].id,
        last_run=finished[-1].id,
    )
