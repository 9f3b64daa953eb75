"""What a measured child process does: ``python -m bench.child CMD JSON``.

Each command times only its work (not the interpreter start) and prints one JSON line
last, with ``seconds``. The parent takes the peak RSS of the whole process from ``wait4``.

- ``run``: one tracker through ``runner.execute_tracker`` (the direct path);
- ``worker``: a huey consumer on Redis (``dancecat_core.tasks``), prints ``ready``, runs
  until SIGTERM;
- ``export``: ``services.trackers.export`` of one tracker to a file, as a download is;
- ``floor-json`` / ``floor-xlsx``: the stdlib-json and bare-openpyxl floors, from a
  psycopg2 named (server-side) cursor;
- ``floor-pycsv``: psycopg2 named cursor -> csv.writer, for orientation only.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
import sys
import time
from typing import Any

FETCH = 5000


def _runtime():
    from dancecat_core.runtime import build_runtime

    return build_runtime()


def cmd_run(args: dict[str, Any]) -> dict[str, Any]:
    from dancecat_core.runner import execute_tracker

    runtime = _runtime()
    clock = time.perf_counter()
    outcome = execute_tracker(runtime, args["tracker_id"])
    seconds = time.perf_counter() - clock
    return {
        "seconds": seconds,
        "status": outcome.status.value,
        "rows": outcome.row_count,
        "error": outcome.error,
    }


def cmd_export(args: dict[str, Any]) -> dict[str, Any]:
    from dancecat_core.models import Tracker
    from dancecat_core.services import trackers

    runtime = _runtime()
    with runtime.session_factory() as session:
        tracker = session.get(Tracker, args["tracker_id"])
        session.expunge(tracker)
    clock = time.perf_counter()
    download = trackers.export(runtime, tracker, args["fmt"])
    size = 0
    with open(args["out"], "wb") as out:
        for chunk in download.chunks:
            size += out.write(chunk)
    return {"seconds": time.perf_counter() - clock, "bytes": size}


def cmd_worker(args: dict[str, Any]) -> dict[str, Any]:
    from dancecat_core import tasks

    tasks.configure()
    consumer = tasks.huey.create_consumer(
        workers=args.get("workers", 1), worker_type="thread", periodic=args.get("periodic", True)
    )
    start = consumer.start

    def start_and_say() -> None:
        start()
        print("ready", flush=True)

    consumer.start = start_and_say  # type: ignore[method-assign]
    consumer.run()
    return {"seconds": 0.0}


def _pg_cursor(args: dict[str, Any]):
    import psycopg2

    from bench import config

    conn = psycopg2.connect(
        host=config.PG_HOST, port=config.PG_PORT, user=config.PG_USER, dbname=config.DATA_DB
    )
    cursor = conn.cursor(name="bench_floor")
    cursor.itersize = FETCH
    cursor.execute(args["sql"])
    return conn, cursor


def _batches(cursor) -> Any:
    while rows := cursor.fetchmany(FETCH):
        yield rows


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


def cmd_floor_json(args: dict[str, Any]) -> dict[str, Any]:
    """stdlib json, one dumps per row, rows straight from a server-side cursor."""
    clock = time.perf_counter()
    conn, cursor = _pg_cursor(args)
    dumps = json.dumps
    with open(args["out"], "w", encoding="utf-8") as out:
        first = True
        for batch in _batches(cursor):
            if first:
                header = [d.name for d in cursor.description]
                out.write('{"header": ' + dumps(header, ensure_ascii=False) + ', "rows": [')
            for row in batch:
                out.write(
                    ("" if first else ", ") + dumps(row, default=_json_default, ensure_ascii=False)
                )
                first = False
        out.write("]}")
    conn.close()
    return {"seconds": time.perf_counter() - clock}


def cmd_floor_xlsx(args: dict[str, Any]) -> dict[str, Any]:
    """Bare openpyxl write-only: append every row from a server-side cursor, save."""
    from openpyxl import Workbook

    clock = time.perf_counter()
    conn, cursor = _pg_cursor(args)
    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    first = True
    for batch in _batches(cursor):
        if first:
            sheet.append([d.name for d in cursor.description])
            first = False
        for row in batch:
            sheet.append(row)
    book.save(args["out"])
    conn.close()
    return {"seconds": time.perf_counter() - clock}


def cmd_floor_pycsv(args: dict[str, Any]) -> dict[str, Any]:
    clock = time.perf_counter()
    conn, cursor = _pg_cursor(args)
    with open(args["out"], "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        for batch in _batches(cursor):
            writer.writerows(batch)
    conn.close()
    return {"seconds": time.perf_counter() - clock}


COMMANDS = {
    "run": cmd_run,
    "export": cmd_export,
    "worker": cmd_worker,
    "floor-json": cmd_floor_json,
    "floor-xlsx": cmd_floor_xlsx,
    "floor-pycsv": cmd_floor_pycsv,
}


def main(argv: list[str]) -> None:
    from bench.measure import vmhwm_mb

    result = COMMANDS[argv[0]](json.loads(argv[1]) if len(argv) > 1 else {})
    result["vmhwm_mb"] = vmhwm_mb()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
