"""The result pipeline cases: database -> stored result -> download, against the floors.

"Ours" is what a user pays for: a run of a saved job into the result store with scrubbing
on (through a real huey worker on Redis when ``dancecat_core.tasks`` can run jobs, else
``execute_tracker`` directly; the report says which), then the download through
``services.trackers.export``. Floors and ours alternate within each repeat, so machine
noise lands on both.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from bench import checks, config, data, measure
from bench.measure import Sample

FORMATS = ("csv", "xlsx", "ods", "json")
# "my-csv-rows" is the MariaDB CSV case with the raw-packet path off
# (DANCECAT_MYSQL_FAST_CSV=off in the worker): the row path that path falls back to, so the
# fast path's cost in code stays weighed against what it saves.
TARGETS = {
    "pg-csv": 2.0,
    "pg-csv-params": 2.0,
    "my-csv": 5.0,
    "my-csv-rows": 5.0,
    "pg-xlsx": 0.25,
    "pg-ods": 0.25,
    "pg-json": 1.2,
}
# The spreadsheet cases share one floor per repeat, bare openpyxl writing the XLSX: there
# is no bare ODS writer worth the name (odfpy builds a DOM), and one floor makes ODS and
# XLSX directly comparable in the same run.
SHEET_CASES = ("pg-xlsx", "pg-ods")
MY_CASES = ("my-csv", "my-csv-rows")
CASE_NAMES = {
    "pg-csv": "PostgreSQL → CSV",
    "pg-csv-params": "PostgreSQL → CSV, parameterised",
    "my-csv": "MariaDB → CSV",
    "my-csv-rows": "MariaDB → CSV, row path (fast path off)",
    "pg-xlsx": "PostgreSQL → XLSX",
    "pg-ods": "PostgreSQL → ODS",
    "pg-json": "PostgreSQL → JSON",
}
FLOOR_NAMES = {
    "pg-csv": "psql \\copy CSV",
    "pg-csv-params": "psql \\copy CSV",
    "my-csv": "mariadb --batch --quick",
    "my-csv-rows": "mariadb --batch --quick",
    "pg-xlsx": "openpyxl write-only",
    "pg-ods": "openpyxl write-only XLSX",
    "pg-json": "stdlib json",
}
# The worker's environment for each case that needs more than the common one.
CASE_ENV = {"my-csv-rows": {"DANCECAT_MYSQL_FAST_CSV": "off"}}
# Each MariaDB case's kept output file.
MY_OUT = {"my-csv": "ours-my.csv", "my-csv-rows": "ours-my-rows.csv"}


# The parameterised case: every row of the table, filtered through a bound integer, date
# and text, so its CSV must still be byte-identical to psql's copy of the whole table.
PARAMS_SQL = (
    "SELECT * FROM {table} WHERE id <= {{{{ max_id }}}} AND day <= {{{{ until }}}}"
    " AND label <> {{{{ skip }}}}"
)
PARAMS = ("max_id:integer=2147483647", "until:date=9999-12-31", "skip:text='; DROP TABLE x; --")


@attrs.define
class CaseResult:
    key: str  # e.g. "pg-csv"
    rows: int
    floor: list[Sample] = attrs.field(factory=list)
    run: list[Sample] = attrs.field(factory=list)
    export: list[Sample] = attrs.field(factory=list)
    checks: list[checks.Verdict] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)
    error: str | None = None

    @property
    def floor_s(self) -> float:
        return measure.median([s.seconds for s in self.floor])

    @property
    def run_s(self) -> float:
        return measure.median([s.seconds for s in self.run])

    @property
    def export_s(self) -> float:
        return measure.median([s.seconds for s in self.export])

    @property
    def ours_s(self) -> float:
        totals = [r.seconds + e.seconds for r, e in zip(self.run, self.export, strict=False)]
        return measure.median(totals)

    @property
    def ratio(self) -> float:
        return self.ours_s / self.floor_s if self.floor else float("nan")

    @property
    def rss_mb(self) -> float:
        values = [s.rss_mb for s in self.run + self.export]
        return max(values) if values else float("nan")

    @property
    def floor_rss_mb(self) -> float:
        values = [s.rss_mb for s in self.floor]
        return max(values) if values else float("nan")


def worker_available() -> tuple[bool, str]:
    """Run jobs through the huey worker when its modules are all there."""
    missing = [
        name
        for name in ("dancecat_core.tasks", "dancecat_core.scheduler", "dancecat_core.notify")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        return False, f"execute_tracker directly ({', '.join(missing)} not there yet)"
    return True, "through a huey worker process on Redis (dancecat_core.tasks.run_job)"


class App:
    """DanceCat's app database, settings and jobs for the pipeline cases."""

    def __init__(self, home: Path, use_worker: bool):
        self.home = home
        self.use_worker = use_worker
        data.ensure_pg_database(config.APP_DB)
        self.env = {
            **os.environ,
            "DANCECAT_HOME": str(home),
            "DANCECAT_DATABASE_URL": config.pg_url(config.APP_DB),
            "DANCECAT_REDIS_URL": config.REDIS_URL,
            "DANCECAT_HUEY_NAME": f"dc-bench-{os.getpid()}",
            "DANCECAT_DB_TIMEOUT": "7200",
            "DANCECAT_JOB_WORKER_EXECUTE_TIMEOUT": "7200",
            "DANCECAT_JOB_WORKER_ENQUEUE_TIMEOUT": "7200",
            "DANCECAT_WORKERS": "1",
        }
        os.environ.update(self.env)
        from dancecat_core import migrations
        from dancecat_core.runtime import build_runtime

        self.runtime = build_runtime()
        migrations.upgrade(self.runtime.engine)
        self._jobs: dict[tuple[str, int], int] = {}
        if use_worker:
            from dancecat_core import tasks

            tasks.configure(runtime=self.runtime)

    def has_driver(self, name: str) -> bool:
        return name in self.runtime.drivers

    def job(self, driver: str, rows: int, *, parameterised: bool = False) -> int:
        """The saved job that selects the bench table (created once, found by name);
        ``parameterised``: the same rows through three bound parameters (``PARAMS_SQL``)."""
        key = (driver, rows, parameterised)
        if key in self._jobs:
            return self._jobs[key]
        from dancecat_core.errors import NotFound
        from dancecat_core.services import connections, jobs
        from dancecat_core.services.connections import ConnectionInput
        from dancecat_core.services.jobs import JobInput

        name = f"bench-{driver}"
        with self.runtime.session_factory() as session:
            try:
                connection = connections.get_by_name(session, None, name)
            except NotFound:
                host, port, user = (
                    (config.PG_HOST, config.PG_PORT, config.PG_USER)
                    if driver == "postgresql"
                    else (config.MY_HOST, config.MY_PORT, config.MY_USER)
                )
                connection = connections.create(
                    self.runtime,
                    session,
                    None,
                    ConnectionInput(
                        name=name,
                        driver=driver,
                        database=config.DATA_DB,
                        host=host,
                        port=port,
                        user=user,
                    ),
                )
            job_name = f"bench-{driver}-{rows}" + ("-params" if parameterised else "")
            try:
                job = jobs.get_by_name(session, None, job_name)
            except NotFound:
                job = jobs.create(
                    self.runtime,
                    session,
                    None,
                    JobInput(
                        name=job_name,
                        connection_id=connection.id,
                        query=PARAMS_SQL.format(table=data.table_name(rows))
                        if parameterised
                        else data.select_sql(rows),
                        parameters=list(PARAMS) if parameterised else [],
                        timeout_seconds=7200,
                    ),
                )
            session.commit()
            self._jobs[key] = job.id
            return job.id

    def new_tracker(self, job_id: int) -> int:
        from dancecat_core.services import jobs

        with self.runtime.session_factory() as session:
            tracker = jobs.queue_run(session, None, job_id)
            session.commit()
            return tracker.id

    def tracker_facts(self, tracker_id: int) -> dict[str, Any]:
        from dancecat_core.models import Tracker

        with self.runtime.session_factory() as session:
            t = session.get(Tracker, tracker_id)
            return {
                "status": t.status,
                "rows": t.row_count,
                "error": t.error,
                "duration_ms": t.duration_ms,
                "result_meta": t.result_meta,
            }

    def run(self, job_id: int, env: dict[str, str] | None = None) -> tuple[int, Sample]:
        """One run of the job into the result store; (tracker id, time and peak RSS).
        ``env``: variables added to the running process's environment."""
        tracker_id = self.new_tracker(job_id)
        run_env = {**self.env, **(env or {})}
        if not self.use_worker:
            sample = measure.python("run", {"tracker_id": tracker_id}, env=run_env)
        else:
            sample = self._run_in_worker(tracker_id, run_env)
        facts = self.tracker_facts(tracker_id)
        if facts["status"] != "Success":
            raise measure.ChildFailed(f"tracker {tracker_id}: {facts['status']}: {facts['error']}")
        return tracker_id, attrs.evolve(sample, info={**sample.info, **facts})

    def _run_in_worker(self, tracker_id: int, env: dict[str, str]) -> Sample:
        from dancecat_core import tasks
        from dancecat_core.models import FINISHED, Tracker, TrackerStatus

        worker = measure.Background("worker", {"workers": 1, "periodic": False}, env=env)
        server = measure.server_pid("mariadbd") or measure.server_pid("postgres")
        try:
            worker.wait_ready()
            cpu = measure.cpu_seconds(worker.proc.pid), measure.cpu_seconds(server)
            clock = time.perf_counter()
            tasks.enqueue_run(tracker_id)
            while True:
                time.sleep(0.01)
                with self.runtime.session_factory() as session:
                    status = session.get(Tracker, tracker_id).status
                if TrackerStatus(status) in FINISHED:
                    break
            seconds = time.perf_counter() - clock
            # CPU, not wall: on a shared machine the load moves wall times, not these.
            used = (
                measure.cpu_seconds(worker.proc.pid) - cpu[0],
                measure.cpu_seconds(server) - cpu[1],
            )
        finally:
            rss = worker.stop()
        return Sample(seconds, rss, {"via": "worker", "cpu_s": used[0], "server_cpu_s": used[1]})

    def export(self, tracker_id: int, fmt: str, out: Path) -> Sample:
        return measure.python(
            "export", {"tracker_id": tracker_id, "fmt": fmt, "out": str(out)}, env=self.env
        )

    def drop_result(self, tracker_id: int) -> None:
        """Delete the run's blobs (a 5M-row result and its renders are a few GB)."""
        from dancecat_core.models import Tracker
        from dancecat_core.services import trackers

        with self.runtime.session_factory() as session:
            tracker = session.get(Tracker, tracker_id)
            store = self.runtime.stores.get(tracker.result_store or "")
            if store is not None:
                for key in trackers.result_keys(self.runtime, tracker):
                    store.delete(key)


@attrs.frozen
class Plan:
    rows: int
    repeats: int
    xlsx_floor_repeats: int
    check_sample: int | None  # XLSX read-back rows (None: all)
    value_checks: bool  # parse-and-compare CSV/JSON (sizes where that is affordable)
    libreoffice: bool
    cases: frozenset[str] = frozenset(TARGETS)
    json_floor: bool = True


def pg_floor_csv(rows: int, out: Path) -> Sample:
    sql = f"\\copy ({data.select_sql(rows)}) TO '{out}' CSV HEADER"
    return measure.command([*config.psql_args(config.DATA_DB), "-c", sql])


def _my_floor(rows: int, out: Path) -> Sample:
    return measure.command(
        [*config.mariadb_args(config.DATA_DB), "--batch", "--quick", "-e", data.select_sql(rows)],
        stdout_path=out,
    )


def run_plan(app: App, plan: Plan, out_dir: Path, log: Callable[[str], None]) -> list[CaseResult]:
    n = plan.rows
    out_dir.mkdir(parents=True, exist_ok=True)
    want = [key for key in TARGETS if key in plan.cases]
    cases = {key: CaseResult(key, n) for key in want}
    pg_cases = [key for key in want if key.startswith("pg-")]
    my_cases = [key for key in want if key in MY_CASES]
    have_my = app.has_driver("mysql")
    for key in my_cases if not have_my else []:
        cases[key].error = "no mysql driver registered yet (dancecat_plugins.mysql_driver)"
    pg_job = app.job("postgresql", n) if set(pg_cases) - {"pg-csv-params"} else None
    params_job = app.job("postgresql", n, parameterised=True) if "pg-csv-params" in cases else None
    pg_cases = [key for key in pg_cases if key != "pg-csv-params"]
    my_job = app.job("mysql", n) if have_my and my_cases else None

    def keep(name: str, repeat: int) -> Path:
        # The first repeat's files are kept for the exactness checks; the rest overwrite one.
        return out_dir / (name if repeat == 0 else f"scratch-{name}")

    def floor_py(cmd: str, name: str, repeat: int) -> Sample:
        out = keep(name, repeat)
        return measure.python(cmd, {"sql": data.select_sql(n), "out": str(out)})

    for repeat in range(plan.repeats):
        log(f"  [{n:,} rows] repeat {repeat + 1}/{plan.repeats}")
        # PostgreSQL: one run, exported to each format; each floor beside it.
        if "pg-csv" in cases or (pg_cases and repeat == 0):
            # The psql CSV is also what XLSX is checked against: made once even without pg-csv.
            target = cases.get("pg-csv") or CaseResult("pg-csv", n)
            _step(target, "floor", lambda r=repeat: pg_floor_csv(n, keep("floor-pg.csv", r)))
        tracker = None
        try:
            if pg_job is not None:
                tracker, run = app.run(pg_job)
                for key in pg_cases:
                    cases[key].run.append(run)
                    _step(
                        cases[key],
                        "export",
                        lambda f=key[3:], r=repeat, t=tracker: app.export(
                            t, f, keep(f"ours-pg.{f}", r)
                        ),
                    )
        except Exception as exc:  # a run that failed fails every PostgreSQL case
            for key in pg_cases:
                cases[key].error = str(exc)
        finally:
            if tracker is not None:
                app.drop_result(tracker)
        if params_job is not None:
            case = cases["pg-csv-params"]
            _step(case, "floor", lambda r=repeat: pg_floor_csv(n, keep("floor-pg.csv", r)))
            tracker = None
            try:
                tracker, run = app.run(params_job)
                case.run.append(run)
                _step(
                    case,
                    "export",
                    lambda r=repeat, t=tracker: app.export(t, "csv", keep("ours-pg-params.csv", r)),
                )
            except Exception as exc:
                case.error = str(exc)
            finally:
                if tracker is not None:
                    app.drop_result(tracker)
        if "pg-json" in cases and plan.json_floor:
            _step(
                cases["pg-json"],
                "floor",
                lambda r=repeat: floor_py("floor-json", "floor-pg.json", r),
            )
        sheet_cases = [key for key in SHEET_CASES if key in cases]
        if sheet_cases and repeat < plan.xlsx_floor_repeats:
            floor = CaseResult("pg-xlsx", n)
            _step(floor, "floor", lambda r=repeat: floor_py("floor-xlsx", "floor-pg.xlsx", r))
            for key in sheet_cases:
                cases[key].floor += floor.floor
                cases[key].error = cases[key].error or floor.error
        # MariaDB -> CSV: one floor per repeat, shared by the fast-path and row-path cases.
        if my_cases:
            floor = CaseResult("my-csv", n)
            _step(floor, "floor", lambda r=repeat: _my_floor(n, keep("floor-my.tsv", r)))
            for key in my_cases:
                cases[key].floor += floor.floor
                cases[key].error = cases[key].error or floor.error
        for key in my_cases if my_job is not None else []:
            if cases[key].error is not None:
                continue
            tracker = None
            try:
                tracker, run = app.run(my_job, CASE_ENV.get(key))
                cases[key].run.append(run)
                _step(
                    cases[key],
                    "export",
                    lambda r=repeat, t=tracker, k=key: app.export(t, "csv", keep(MY_OUT[k], r)),
                )
            except Exception as exc:
                cases[key].error = str(exc)
            finally:
                if tracker is not None:
                    app.drop_result(tracker)
        for case in cases.values():
            _progress(case, log)

    _exactness(cases, plan, out_dir, log)
    for path in out_dir.glob("scratch-*"):
        path.unlink()
    return list(cases.values())


def _step(case: CaseResult, part: str, fn: Callable[[], Sample]) -> None:
    if case.error and part != "floor":
        return
    try:
        getattr(case, part).append(fn())
    except Exception as exc:
        case.error = f"{part}: {exc}"


def _progress(case: CaseResult, log: Callable[[str], None]) -> None:
    last = lambda xs: f"{xs[-1].seconds:.2f}s/{xs[-1].rss_mb:.0f}MB" if xs else "-"  # noqa: E731
    log(
        f"    {case.key:8} floor {last(case.floor):>15}  run {last(case.run):>15}  "
        f"export {last(case.export):>15}" + (f"  ERROR {case.error[:200]}" if case.error else "")
    )


def _exactness(
    cases: dict[str, CaseResult], plan: Plan, out_dir: Path, log: Callable[[str], None]
) -> None:
    floor_csv = out_dir / "floor-pg.csv"

    def check(key: str, ours: str, fn: Callable[[], checks.Verdict]) -> None:
        if key not in cases:
            return
        case = cases[key]
        if not (out_dir / ours).exists():
            case.checks.append(checks.Verdict(None, f"{ours} was not produced"))
            return
        try:
            verdict = fn()
        except Exception as exc:
            verdict = checks.Verdict(False, f"{ours}: check raised {type(exc).__name__}: {exc}")
        case.checks.append(verdict)
        log(f"    check {key}: {verdict}")

    log(f"  [{plan.rows:,} rows] exactness checks")
    check(
        "pg-csv",
        "ours-pg.csv",
        lambda: checks.check_csv_pg(out_dir / "ours-pg.csv", floor_csv, plan.value_checks),
    )
    check(
        "pg-csv-params",
        "ours-pg-params.csv",
        lambda: checks.check_csv_pg(out_dir / "ours-pg-params.csv", floor_csv, plan.value_checks),
    )
    if plan.value_checks:
        for key in MY_CASES:
            check(
                key,
                MY_OUT[key],
                lambda k=key: checks.check_csv_mariadb(
                    out_dir / MY_OUT[k], out_dir / "floor-my.tsv"
                ),
            )
        check(
            "pg-json",
            "ours-pg.json",
            lambda: checks.check_json(out_dir / "ours-pg.json", out_dir / "floor-pg.json"),
        )
        check(
            "pg-xlsx",
            "ours-pg.xlsx",
            lambda: checks.check_xlsx(out_dir / "ours-pg.xlsx", floor_csv, plan.check_sample),
        )
        check(
            "pg-ods",
            "ours-pg.ods",
            lambda: checks.check_ods(out_dir / "ours-pg.ods", floor_csv, plan.check_sample),
        )
    else:
        for key in [k for k in (*MY_CASES, "pg-json", *SHEET_CASES) if k in cases]:
            cases[key].checks.append(
                checks.Verdict(
                    None, f"value checks run at the smaller size only (not at {plan.rows:,} rows)"
                )
            )
    # Both MariaDB paths store the same bytes (tests/test_mysql_fast_csv.py): checked here too.
    check(
        "my-csv-rows",
        MY_OUT["my-csv-rows"],
        lambda: checks.check_same_bytes(
            out_dir / MY_OUT["my-csv-rows"], out_dir / MY_OUT["my-csv"], "the fast path's CSV"
        ),
    )
    if plan.libreoffice:
        check(
            "pg-xlsx",
            "ours-pg.xlsx",
            lambda: checks.check_libreoffice(out_dir / "ours-pg.xlsx", plan.rows, 900),
        )
        check(
            "pg-ods",
            "ours-pg.ods",
            lambda: checks.check_libreoffice(out_dir / "ours-pg.ods", plan.rows, 900),
        )


def clean(out_dir: Path) -> None:
    shutil.rmtree(out_dir, ignore_errors=True)
