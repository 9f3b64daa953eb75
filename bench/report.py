"""The one table, and bench/README.md's results section."""

from __future__ import annotations

import math
import re

import attrs

from bench import config
from bench.pipeline import CASE_NAMES, FLOOR_NAMES, TARGETS, CaseResult

RSS_LIMIT_MB = 150
RSS_NOISE_MB = 15  # what two runs of the same case differ by here
START = "<!-- bench:results:start -->"
END = "<!-- bench:results:end -->"


@attrs.frozen
class Row:
    case: str
    floor: str = "—"
    ours: str = "—"
    run: str = "—"
    export: str = "—"
    ratio: str = "—"
    target: str = "—"
    holds: str = "—"
    rss: str = "—"


def _s(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.2f}"


def _case_row(c: CaseResult) -> Row:
    target = TARGETS[c.key]
    name = f"{CASE_NAMES[c.key]}, {c.rows / 1e6:g}M rows (floor: {FLOOR_NAMES[c.key]})"
    if c.error:
        holds = "error"
    elif not c.floor or not c.run or not c.export:
        holds = "n/a"
    else:
        holds = "yes" if c.ratio <= target else "NO"
    bad_check = any(v.ok is False for v in c.checks)
    if bad_check:
        holds += " (inexact!)"
    return Row(
        case=name,
        floor=_s(c.floor_s),
        ours=_s(c.ours_s),
        run=_s(c.run_s),
        export=_s(c.export_s),
        ratio="—" if math.isnan(c.ratio) else f"{c.ratio:.2f}x",
        target=f"≤ {target:g}x",
        holds=holds,
        rss="—" if math.isnan(c.rss_mb) else f"{c.rss_mb:.0f}",
    )


def rss_rows(results: list[CaseResult]) -> list[Row]:
    """The RSS target: < 150 MB at the biggest size, no growth from the smaller one."""
    sizes = sorted({c.rows for c in results})
    if not sizes:
        return []
    big = [c for c in results if c.rows == sizes[-1] and not math.isnan(c.rss_mb)]
    if not big:
        return []
    worst = max(big, key=lambda c: c.rss_mb)
    rows = [
        Row(
            case=f"peak RSS, any format, {sizes[-1] / 1e6:g}M rows (worst: {worst.key})",
            target=f"< {RSS_LIMIT_MB} MB",
            holds="yes" if worst.rss_mb < RSS_LIMIT_MB else "NO",
            rss=f"{worst.rss_mb:.0f}",
        )
    ]
    if len(sizes) > 1:
        growth = _growth(results, sizes[0], sizes[-1])
        if growth:
            key, delta = max(growth.items(), key=lambda kv: kv[1])
            rows.append(
                Row(
                    case=f"RSS growth {sizes[0] / 1e6:g}M → {sizes[-1] / 1e6:g}M (worst: {key})",
                    target=f"≤ noise ({RSS_NOISE_MB} MB)",
                    holds="yes" if delta <= RSS_NOISE_MB else "NO",
                    rss=f"{delta:+.0f}",
                )
            )
    return rows


def _growth(results: list[CaseResult], small: int, big: int) -> dict[str, float]:
    by = {(c.key, c.rows): c.rss_mb for c in results}
    return {
        key: by[(key, big)] - by[(key, small)]
        for key in TARGETS
        if (key, small) in by
        and (key, big) in by
        and not math.isnan(by[(key, big)])
        and not math.isnan(by[(key, small)])
    }


def rss_growth(results: list[CaseResult]) -> str:
    sizes = sorted({c.rows for c in results})
    if len(sizes) < 2:
        return ""
    growth = _growth(results, sizes[0], sizes[-1])
    parts = ", ".join(f"{k} {v:+.0f} MB" for k, v in growth.items())
    return f"Peak RSS change {sizes[0]:,} → {sizes[-1]:,} rows: {parts}." if parts else ""


HEADER = [
    "case",
    "floor s",
    "ours s",
    "run s",
    "export s",
    "ratio",
    "target",
    "holds?",
    "peak RSS MB",
]


def table(results: list[CaseResult], extra: list[Row]) -> str:
    rows = [_case_row(c) for c in results] + rss_rows(results) + list(extra)
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        cells = [r.case, r.floor, r.ours, r.run, r.export, r.ratio, r.target, r.holds, r.rss]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_readme(
    table_text: str,
    notes: list[str],
    results: list[CaseResult],
    facts: dict[str, str],
    command: str,
) -> None:
    path = config.BENCH / "README.md"
    text = f"# Benchmarks\n\n{START}\n{END}\n"
    if path.exists():
        text = path.read_text(encoding="utf-8")
    machine = (
        f"{facts['date']}, `bench/run {command}` took {facts.get('elapsed', '?')}. "
        f"Machine: {facts['nproc']} cores ({facts['cpu']}), {facts['memory']} memory, "
        f"Linux {facts['kernel']}, Python {facts['python']}; {facts['clients']}; "
        f"load average at start {facts['load']}."
    )
    body = "\n".join(
        [START, "", f"Latest run: {machine}", "", table_text, ""]
        + [f"- {note}" for note in notes]
        + ["", END]
    )
    if START in text and END in text:
        text = re.sub(
            re.escape(START) + ".*?" + re.escape(END), lambda _: body, text, flags=re.DOTALL
        )
    else:
        text = text.rstrip() + "\n\n## Latest results\n\n" + body + "\n"
    path.write_text(text, encoding="utf-8")
