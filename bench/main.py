"""``bench/run``: every case, one table, written to bench/README.md.

bench/run            # 1M rows (3 repeats) and 5M rows (1 repeat), scheduler, web
bench/run --quick    # 200k rows, 1 repeat: a smoke run of the whole harness
bench/run --only pipeline|scheduler|web|console   (repeatable)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from bench import config, data, measure, pipeline, report


def log(message: str) -> None:
    print(message, flush=True)


def machine_facts() -> dict[str, str]:
    def first(path: str, key: str) -> str:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "?"

    mem_kb = first("/proc/meminfo", "MemTotal").split()[0]
    versions = []
    for args in (["psql", "--version"], ["mariadb", "--version"]):
        with contextlib.suppress(OSError):
            versions.append(subprocess.run(args, capture_output=True, text=True).stdout.strip())
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "memory": f"{int(mem_kb) / 1024 / 1024:.1f} GiB" if mem_kb.isdigit() else "?",
        "cpu": first("/proc/cpuinfo", "model name"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "clients": "; ".join(versions),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="200k rows, 1 repeat")
    parser.add_argument(
        "--only", action="append", choices=["pipeline", "scheduler", "web", "console", "schema"]
    )
    parser.add_argument(
        "--cases",
        help="pipeline cases, comma-separated (default: all of " + ",".join(pipeline.TARGETS) + ")",
    )
    parser.add_argument("--sizes", help="comma-separated row counts (default 1000000,5000000)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats at 1M rows (default 3)")
    parser.add_argument(
        "--big-repeats",
        type=int,
        default=1,
        help="repeats at sizes over 1M rows (default 1, for time)",
    )
    parser.add_argument(
        "--xlsx-floor-repeats",
        type=int,
        default=1,
        help="openpyxl floor repeats at 1M (default 1: it alone takes ~80 s)",
    )
    parser.add_argument(
        "--big-floors",
        action="store_true",
        help="also run the Python floors (openpyxl, json) over 1M rows (slow)",
    )
    parser.add_argument(
        "--xlsx-sample",
        type=int,
        default=50_000,
        help="XLSX rows read back through openpyxl (0: all)",
    )
    parser.add_argument("--no-libreoffice", action="store_true")
    parser.add_argument("--no-readme", action="store_true", help="print, do not write README")
    parser.add_argument("--keep", action="store_true", help="keep output files in bench/results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    only = set(args.only or ["pipeline", "scheduler", "web", "console", "schema"])
    if args.quick:
        sizes, repeats = [200_000], 1
    elif args.sizes:
        sizes, repeats = [int(s) for s in args.sizes.split(",")], args.repeats
    else:
        sizes, repeats = [1_000_000, 5_000_000], args.repeats
    clock = time.monotonic()
    facts = machine_facts()
    log(
        f"DanceCat bench — {facts['date']} — {facts['nproc']} cores, {facts['memory']}, "
        f"{facts['cpu']}, load {facts['load']}"
    )
    config.RESULTS.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    results: list[pipeline.CaseResult] = []
    extra_rows: list[report.Row] = []

    if "pipeline" in only:
        log("data:")
        for n in sizes:
            for ensure in (data.ensure_pg, data.ensure_mariadb):
                log("  " + ensure(n, log=log))
        use_worker, how = pipeline.worker_available()
        notes.append(f"Runs went {how}.")
        log(f"runs go {how}")
        app = pipeline.App(config.RESULTS / "home", use_worker)
        for n in sizes:
            big = n > 1_000_000
            plan = pipeline.Plan(
                rows=n,
                repeats=args.big_repeats if big else repeats,
                xlsx_floor_repeats=0
                if big and not args.quick
                else min(args.xlsx_floor_repeats, repeats),
                check_sample=args.xlsx_sample or None,
                value_checks=not big,
                libreoffice=not args.no_libreoffice and not big,
                cases=frozenset(args.cases.split(",") if args.cases else pipeline.TARGETS),
                json_floor=args.big_floors or not big or args.quick,
            )
            results += pipeline.run_plan(app, plan, config.RESULTS / f"out-{n}", log)
            if not args.keep:
                pipeline.clean(config.RESULTS / f"out-{n}")
        notes += pipeline_notes(results, args, sizes)

    if "scheduler" in only:
        from bench import scheduler_case

        rows, more = scheduler_case.run(log, quick=args.quick)
        extra_rows += rows
        notes += more

    if "web" in only:
        from bench import web_case

        rows, more = web_case.run(log, quick=args.quick)
        extra_rows += rows
        notes += more

    if "console" in only:
        from bench import console_case

        rows, more = console_case.run(
            log, quick=args.quick, rows=min(sizes), repeats=min(repeats, 3)
        )
        extra_rows += rows
        notes += more

    if "schema" in only:
        from bench import schema_case

        rows, more = schema_case.run(log, repeats=1 if args.quick else 5)
        extra_rows += rows
        notes += more

    elapsed = time.monotonic() - clock
    facts["elapsed"] = f"{elapsed / 60:.1f} min"
    table = report.table(results, extra_rows)
    log("")
    log(table)
    for note in notes:
        log(f"- {note}")
    if not args.no_readme:
        report.write_readme(table, notes, results, facts, " ".join(sys.argv[1:]) or "(full)")
        log(f"\nwritten to {config.BENCH / 'README.md'} ({facts['elapsed']})")
    return 0


def pipeline_notes(results: list[pipeline.CaseResult], args, sizes: list[int]) -> list[str]:
    notes = []
    for n in sizes:
        if n > 1_000_000 and not args.quick:
            notes.append(
                f"At {n:,} rows: {args.big_repeats} repeat(s), and no openpyxl or stdlib-json "
                "floor (openpyxl alone would take 5+ min; `--big-floors` runs them): those "
                "rows are there for time and peak RSS, their ratios are the 1M ones. Value "
                "checks run at the smaller size; PostgreSQL CSV is still checked byte for byte."
            )
    notes.append(
        "Ours = run (query → scrubbed canonical CSV in the result store) + export "
        "(trackers.export → file); the XLSX, ODS and JSON exports are from the same run."
    )
    notes += cpu_notes(results)
    for case in results:
        for verdict in case.checks:
            notes.append(f"{case.key} {case.rows:,}: {verdict}")
        if case.error:
            notes.append(f"{case.key} {case.rows:,}: ERROR {case.error}")
    notes += sheet_notes(results)
    growth = report.rss_growth(results)
    if growth:
        notes.append(growth)
    if any(math.isnan(c.ratio) for c in results if c.floor and c.run):
        notes.append("Some ratios are missing: see the errors above.")
    return notes


def cpu_notes(results: list[pipeline.CaseResult]) -> list[str]:
    """Each MariaDB case's CPU per million rows, the worker's and mariadbd's, at each size:
    what shows whether a bigger result costs more than its share (the wall times move with
    the machine's load; these do not)."""
    notes = []
    for key in ("my-csv", "my-csv-rows"):
        sizes = [c for c in results if c.key == key and c.run]
        parts = []
        for case in sizes:
            per_m = case.rows / 1e6
            ours = measure.median([s.info.get("cpu_s", math.nan) for s in case.run]) / per_m
            server = measure.median([s.info.get("server_cpu_s", math.nan) for s in case.run])
            parts.append(
                f"{case.rows:,} rows: {ours:.2f} s/M ours, {server / per_m:.2f} s/M server"
            )
        if parts:
            notes.append(f"{key} CPU per million rows (run): " + "; ".join(parts) + ".")
    return notes


def sheet_notes(results: list[pipeline.CaseResult]) -> list[str]:
    """ODS against XLSX, exported from the same run against the same floor."""
    notes = []
    for n in sorted({c.rows for c in results}):
        found = {c.key: c for c in results if c.rows == n and not c.error}
        xlsx, ods = found.get("pg-xlsx"), found.get("pg-ods")
        if xlsx is None or ods is None or not xlsx.export or not ods.export:
            continue
        notes.append(
            f"ODS vs XLSX at {n:,} rows, same run: export {ods.export_s:.2f} s vs "
            f"{xlsx.export_s:.2f} s ({ods.export_s / xlsx.export_s:.2f}x), peak RSS "
            f"{ods.rss_mb:.0f} vs {xlsx.rss_mb:.0f} MB."
        )
    return notes


if __name__ == "__main__":
    sys.exit(main())
