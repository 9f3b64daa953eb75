"""The job page's run-history chart, drawn as inline SVG on the server.

No script and no chart library: bars are run durations (left axis, ms), the line is row
counts (right axis), oldest run on the left. Each axis is titled and has ticks; every bar
and point carries its values as an SVG ``<title>``, which browsers show on hover and
screen readers read. The template draws the shapes computed here; CSS classes colour them
(the CSP forbids inline styles).
"""

from __future__ import annotations

import attrs

from dancecat_core.models import Tracker, TrackerStatus

WIDTH = 640
HEIGHT = 180
PAD = 24
LEFT = 64  # room for the duration ticks and the axis title
RIGHT = 56  # room for the row ticks and the axis title
BOTTOM = 36  # room for the first and last run ids and the x axis title
MAX_BAR = 28
TICKS = 3


@attrs.frozen
class Bar:
    x: float
    y: float
    width: float
    height: float
    failed: bool
    label: str


@attrs.frozen
class Point:
    x: float
    y: float
    label: str = ""


@attrs.frozen
class Tick:
    y: float
    text: str


@attrs.frozen
class Chart:
    bars: list[Bar]
    line: str
    points: list[Point]
    max_ms: int
    max_rows: int
    ms_ticks: list[Tick]
    row_ticks: list[Tick]
    first_run: int
    last_run: int
    width: int = WIDTH
    height: int = HEIGHT
    pad: int = PAD
    left: int = LEFT
    right: int = WIDTH - RIGHT
    bottom: int = HEIGHT - BOTTOM


def _ticks(top: int, count: int = TICKS) -> list[Tick]:
    """``count`` + 1 evenly spaced values from 0 to ``top``, bottom to top of the plot."""
    inner_h = HEIGHT - PAD - BOTTOM
    return [
        Tick(round(HEIGHT - BOTTOM - inner_h * step / count, 1), f"{round(top * step / count):,}")
        for step in range(count + 1)
    ]


def run_chart(runs: list[Tracker]) -> Chart | None:
    """A chart of the finished runs in ``runs`` (newest first, as listed), or ``None``."""
    finished = [tracker for tracker in reversed(runs) if tracker.duration_ms is not None]
    if not finished:
        return None
    max_ms = max(tracker.duration_ms or 0 for tracker in finished) or 1
    max_rows = max(tracker.row_count or 0 for tracker in finished) or 1
    inner_w = WIDTH - LEFT - RIGHT
    inner_h = HEIGHT - PAD - BOTTOM
    base = HEIGHT - BOTTOM
    slot = inner_w / len(finished)
    bars: list[Bar] = []
    points: list[Point] = []
    for index, tracker in enumerate(finished):
        height = max(1.0, inner_h * (tracker.duration_ms or 0) / max_ms)
        x = LEFT + index * slot
        rows = f"{tracker.row_count:,}" if tracker.row_count is not None else "no"
        label = f"Run {tracker.id}: {tracker.duration_ms:,} ms, {rows} rows, {tracker.status}"
        bars.append(
            Bar(
                x=round(x + (slot - min(slot * 0.7, MAX_BAR)) / 2, 1),
                y=round(base - height, 1),
                width=round(max(1.0, min(slot * 0.7, MAX_BAR)), 1),
                height=round(height, 1),
                failed=tracker.status != TrackerStatus.SUCCESS.value
                and tracker.status != TrackerStatus.RESULT_EXPIRED.value,
                label=label,
            )
        )
        row_y = base - inner_h * (tracker.row_count or 0) / max_rows
        points.append(
            Point(round(x + slot / 2, 1), round(row_y, 1), f"Run {tracker.id}: {rows} rows")
        )
    line = " ".join(f"{point.x},{point.y}" for point in points)
    return Chart(
        bars=bars,
        line=line,
        points=points,
        max_ms=max_ms,
        max_rows=max_rows,
        ms_ticks=_ticks(max_ms),
        row_ticks=_ticks(max_rows),
        first_run=finished[0].id,
        last_run=finished[-1].id,
    )
