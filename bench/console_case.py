"""The console cases: what a user at a shell or a script pays, start-up included.

- Start-up: ``dancecat --help`` and ``dancecat job list`` (an embedded-default home: SQLite
  app database, three jobs) against a bare ``python -c pass`` of the same interpreter.
  Each repeat runs the three in turn, so the machine's drift lands on all of them; every
  command is timed from spawn to exit (a blocking wait, no polling).
- Pipeline: ``dancecat job run`` of the saved 1M-row PostgreSQL job, then ``dancecat
  export RUN --format csv -o FILE``: two commands, each with its own start-up, against
  ``psql \\copy (SELECT …) TO FILE CSV HEADER``, alternating. The console's CSV must be
  byte-identical to psql's.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bench import checks, config, data, measure, pipeline
from bench.report import Row

STARTUP_TARGETS = {"--help": 6.0, "job list": 20.0}
PIPELINE_TARGET = 2.0
DANCECAT = Path(config.PYTHON).with_name("dancecat")
PACKAGES = ("dancecat_core", "dancecat_plugins", "dancecat_web")


def _wall(args: list[str], env: dict[str, str]) -> float:
    clock = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = proc.communicate()
    seconds = time.perf_counter() - clock
    if proc.returncode:
        raise measure.ChildFailed(f"{args} exited {proc.returncode}: {err.decode()[-500:]}")
    return seconds


def _startup_home() -> dict[str, str]:
    home = config.RESULTS / "console-home"
    shutil.rmtree(home, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DANCECAT_")}
    env["DANCECAT_HOME"] = str(home)
    source = config.RESULTS / "console-data.sqlite"  # outside the home: it may not be queried
    env["DANCECAT_SQLITE_ALLOWED_DIRS"] = str(config.RESULTS)  # the default is examples/ only
    sqlite3.connect(source).close()

    def dancecat(*args: str) -> None:
        subprocess.run([str(DANCECAT), *args], env=env, check=True, capture_output=True)

    dancecat("init")
    dancecat("connection", "add", "numbers", "--driver", "sqlite", "--database", str(source))
    for name in ("Top customers", "Daily sales", "Open invoices"):
        dancecat("job", "add", name, "--connection", "numbers", "--sql", "SELECT 1")
    return env


def startup(log: Callable[[str], None], repeats: int) -> tuple[list[Row], list[str]]:
    env = _startup_home()
    commands = {
        "python -c pass": [config.PYTHON, "-c", "pass"],
        "--help": [str(DANCECAT), "--help"],
        "job list": [str(DANCECAT), "job", "list"],
    }
    for args in commands.values():
        _wall(args, env)  # warm the page cache
    times: dict[str, list[float]] = {key: [] for key in commands}
    for _ in range(repeats):
        for key, args in commands.items():
            times[key].append(_wall(args, env))
    floor = measure.median(times["python -c pass"])
    rows = []
    for key, target in STARTUP_TARGETS.items():
        ours = measure.median(times[key])
        ratio = ours / floor
        rows.append(
            Row(
                case=f"console start-up: dancecat {key} (floor: python -c pass)",
                floor=f"{floor:.3f}",
                ours=f"{ours:.3f}",
                ratio=f"{ratio:.1f}x",
                target=f"≤ {target:g}x",
                holds="yes" if ratio <= target else "NO",
            )
        )
        log(f"  dancecat {key}: {ours:.3f} s, python -c pass {floor:.3f} s: {ratio:.1f}x")
    notes = [
        f"Console start-up: medians of {repeats} runs each, spawn to exit, the three commands "
        "in turn; `job list` on an embedded-default home (SQLite app database, 3 jobs)."
    ]
    return rows, notes


def _run_id(stdout: Path) -> int:
    """``run N: Success, R rows`` -> N."""
    words = stdout.read_text().split()
    if len(words) < 3 or words[0] != "run" or words[2] != "Success,":
        raise measure.ChildFailed(f"dancecat job run said: {stdout.read_text()[:500]}")
    return int(words[1].rstrip(":"))


def console_pipeline(
    log: Callable[[str], None], rows: int, repeats: int
) -> tuple[list[Row], list[str]]:
    """``job run`` + ``export`` through the console vs ``psql \\copy`` (see the docstring)."""
    log("  " + data.ensure_pg(rows, log=log))
    app = pipeline.App(config.RESULTS / "home", use_worker=False)
    job_id = app.job("postgresql", rows)
    out = config.RESULTS / f"console-{rows}"
    out.mkdir(parents=True, exist_ok=True)
    floors: list[measure.Sample] = []
    runs: list[measure.Sample] = []
    exports: list[measure.Sample] = []
    for repeat in range(repeats):
        floors.append(pipeline.pg_floor_csv(rows, out / "floor.csv"))
        runs.append(
            measure.command([str(DANCECAT), "job", "run", f"id:{job_id}"], stdout_path=out / "run")
        )
        run_id = _run_id(out / "run")
        try:
            exports.append(
                measure.command(
                    [
                        str(DANCECAT),
                        "export",
                        str(run_id),
                        "--format",
                        "csv",
                        "-o",
                        out / "ours.csv",
                    ]
                )
            )
        finally:
            app.drop_result(run_id)
        log(
            f"  [{rows:,} rows] repeat {repeat + 1}/{repeats}: psql {floors[-1].seconds:.2f} s, "
            f"job run {runs[-1].seconds:.2f} s + export {exports[-1].seconds:.2f} s"
        )
    verdict = checks.check_csv_pg(out / "ours.csv", out / "floor.csv", True)
    log(f"    check console-csv: {verdict}")
    shutil.rmtree(out, ignore_errors=True)
    floor = measure.median([s.seconds for s in floors])
    run = measure.median([s.seconds for s in runs])
    export = measure.median([s.seconds for s in exports])
    ours = measure.median([r.seconds + e.seconds for r, e in zip(runs, exports, strict=True)])
    ratio = ours / floor
    holds = "yes" if ratio <= PIPELINE_TARGET else "NO"
    if verdict.ok is False:
        holds += " (inexact!)"
    row = Row(
        case=f"console: dancecat job run + export csv, PostgreSQL {rows / 1e6:g}M rows "
        "(floor: psql \\copy CSV)",
        floor=f"{floor:.2f}",
        ours=f"{ours:.2f}",
        run=f"{run:.2f}",
        export=f"{export:.2f}",
        ratio=f"{ratio:.2f}x",
        target=f"≤ {PIPELINE_TARGET:g}x",
        holds=holds,
        rss=f"{max(s.rss_mb for s in runs + exports):.0f}",
    )
    notes = [
        f"Console pipeline {rows:,}: `dancecat job run` (in the foreground, no worker) then "
        "`dancecat export --format csv -o FILE`, each timed spawn to exit, start-up included; "
        f"{repeats} repeat(s), medians. {verdict}",
    ]
    return [row], notes


def _compile_packages(log: Callable[[str], None]) -> None:
    """Compile DanceCat's modules to bytecode once, as installing a wheel does. An editable
    install under ``PYTHONDONTWRITEBYTECODE`` (this machine sets it) otherwise compiles
    every imported DanceCat module from source at each command's start-up."""
    packages = [str(config.ROOT / name) for name in PACKAGES]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([config.PYTHON, "-m", "compileall", "-q", *packages], env=env, check=True)
    log("  DanceCat's packages compiled to bytecode (as a wheel install does)")


def run(
    log: Callable[[str], None], *, quick: bool, rows: int, repeats: int
) -> tuple[list[Row], list[str]]:
    log("console:")
    _compile_packages(log)
    table, notes = startup(log, repeats=5 if quick else 21)
    more_rows, more_notes = console_pipeline(log, rows, 1 if quick else repeats)
    return table + more_rows, notes + more_notes
