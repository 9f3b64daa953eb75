"""The job page's run-history chart, drawn as inline SVG on the server.

No script and no chart library: bars are run durations, the line is row counts, oldest
on the left. The template draws the shapes computed here; CSS classes colour them (the
CSP forbids inline styles).
"""

from __future__ import annotations

import attrs

from dancecat_core.models import Tracker, TrackerStatus

WIDTH = 640
HEIGHT = 160
PAD = 24
MAX_BAR = 28


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


@attrs.frozen
class Chart:
    bars: list[Bar]
    line: str
    points: list[Point]
    max_ms: int
    max_rows: int
    width: int = WIDTH
    height: int = HEIGHT
    pad: int = PAD


def run_chart(runs: list[Tracker]) -> Chart | None:
    """A chart of the finished runs in ``runs`` (newest first, as listed), or ``None``."""
    finished = [tracker for tracker in reversed(runs) if tracker.duration_ms is not None]
    if not finished:
        return None
    max_ms = max(tracker.duration_ms or 0 for tracker in finished) or 1
    max_rows = max(tracker.row_count or 0 for tracker in finished) or 1
    inner_w = WIDTH - 2 * PAD
    inner_h = HEIGHT - 2 * PAD
    slot = inner_w / len(finished)
    bars: list[Bar] = []
    points: list[Point] = []
    for index, tracker in enumerate(finished):
        height = max(1.0, inner_h * (tracker.duration_ms or 0) / max_ms)
        x = PAD + index * slot
        bars.append(
            Bar(
                x=round(x + (slot - min(slot * 0.7, MAX_BAR)) / 2, 1),
                y=round(PAD + inner_h - height, 1),
                width=round(max(1.0, min(slot * 0.7, MAX_BAR)), 1),
                height=round(height, 1),
                failed=tracker.status != TrackerStatus.SUCCESS.value
                and tracker.status != TrackerStatus.RESULT_EXPIRED.value,
                label=f"Run {tracker.id}: {tracker.duration_ms} ms, "
                f"{tracker.row_count if tracker.row_count is not None else 'no'} rows, "
                f"{tracker.status}",
            )
        )
        row_y = PAD + inner_h - inner_h * (tracker.row_count or 0) / max_rows
        points.append(Point(round(x + slot / 2, 1), round(row_y, 1)))
    line = " ".join(f"{point.x},{point.y}" for point in points)
    return Chart(bars=bars, line=line, points=points, max_ms=max_ms, max_rows=max_rows)
