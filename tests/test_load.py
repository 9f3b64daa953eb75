"""Load: 50 concurrent clients poll trackers and download a 100,000-row CSV while 4
consumer processes work through 500 queued runs. Zero errors, every run done exactly
once, memory bounded. Real processes: ``dancecat serve`` (waitress) and four
``dancecat worker`` on Redis (a huey name of its own on the shared Redis), PostgreSQL as
the app database.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import statistics
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select
from test_web_helpers import make_user, serve
from test_worker import BIN, ROOT

from dancecat_core import db, migrations, tasks
from dancecat_core.models import Connection, Job, Tracker, TrackerStatus
from dancecat_core.runner import execute_tracker
from dancecat_core.runtime import build_runtime
from dancecat_core.services import jobs as job_service
from dancecat_core.settings import load_settings

CLIENTS = 50
CONSUMERS = 4
RUNS = 500
BIG_ROWS = 100_000
BIG_SQL = (
    f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {BIG_ROWS}) "
    "SELECT x AS id, 'customer ' || x AS name, x * 1.25 AS amount, "
    "date('2020-01-01', '+' || (x % 1000) || ' days') AS day FROM c"
)
QUICK_SQL = "SELECT ArtistId, Name FROM Artist ORDER BY ArtistId LIMIT 5"
SERVER_RSS_LIMIT_MB = 400
CONSUMER_RSS_LIMIT_MB = 300


def rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0.0
    match = re.search(r"VmRSS:\s+(\d+)", status)
    return int(match.group(1)) / 1024 if match else 0.0


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_50_clients_4_consumers_500_runs(tmp_path, sqlite_chinook, pg_database, redis_url):
    home = tmp_path / "home"
    env = {
        "DANCECAT_HOME": str(home),
        "DANCECAT_SQLITE_ALLOWED_DIRS": str(tmp_path),
        "DANCECAT_DATABASE_URL": pg_database["url"],
        "DANCECAT_REDIS_URL": redis_url,
        "DANCECAT_HUEY_NAME": f"dc-load-{uuid.uuid4().hex[:10]}",
        "DANCECAT_FREQUENCY_INTERVAL_SECONDS": "5",
    }
    settings = load_settings(environ={**os.environ, **env})
    runtime = build_runtime(settings)
    migrations.upgrade(runtime.engine)
    tasks.configure(runtime=runtime)
    member = make_user(runtime, "load@example.com", admin=True)
    with db.session_scope(runtime.session_factory) as session:
        connection = Connection(name="chinook", driver="sqlite", database=str(sqlite_chinook))
        big = Job(name="big", connection=connection, query=BIG_SQL)
        quick = Job(name="quick", connection=connection, query=QUICK_SQL)
        session.add_all([connection, big, quick])
        session.flush()
        big_id, quick_id = big.id, quick.id
    with db.session_scope(runtime.session_factory) as session:
        big_tracker = job_service.queue_run(session, None, big_id).id
    assert execute_tracker(runtime, big_tracker).status == TrackerStatus.SUCCESS
    with runtime.session_factory() as session:
        big_bytes = session.get(Tracker, big_tracker).result_bytes
    with db.session_scope(runtime.session_factory) as session:
        run_ids = [job_service.queue_run(session, None, quick_id).id for _ in range(RUNS)]
    for tracker_id in run_ids:
        tasks.enqueue_run(tracker_id)

    logs = []
    consumers = []
    server_cm = serve(home, env={**env, "DANCECAT_EMBEDDED_WORKER": "false"})
    live = next(server_cm)
    try:
        for i in range(CONSUMERS):
            log = open(home / f"consumer-{i}.log", "wb")  # noqa: SIM115 - closed below
            logs.append(log)
            consumers.append(
                subprocess.Popen(
                    [str(BIN / "dancecat"), "worker", "--workers", "2"],
                    env={**os.environ, **env},
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        figures = _drive(live.url, member.token, run_ids, big_tracker, big_bytes, runtime,
                         [live.process.pid], [c.pid for c in consumers])  # fmt: skip
    finally:
        for process in consumers:
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for process in consumers:
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()
        for log in logs:
            log.close()
        with contextlib.suppress(StopIteration):
            next(server_cm)
        tasks.huey.storage.flush_queue()
        tasks.huey.storage.flush_schedule()
        tasks.configure(None)

    consumer_logs = "\n".join(p.read_text(errors="replace") for p in home.glob("consumer-*.log"))
    runs = re.findall(r"tracker (\d+): running job", consumer_logs)
    per_tracker: dict[int, int] = {}
    for tracker_id in map(int, runs):
        per_tracker[tracker_id] = per_tracker.get(tracker_id, 0) + 1
    duplicates = sum(n - 1 for n in per_tracker.values() if n > 1)
    with runtime.session_factory() as session:
        done = session.scalar(
            select(func.count()).where(
                Tracker.id.in_(run_ids), Tracker.status == TrackerStatus.SUCCESS.value
            )
        )
    runtime.engine.dispose()
    latencies = sorted(figures["latencies"])
    p50 = statistics.median(latencies) * 1000
    p95 = latencies[int(len(latencies) * 0.95)] * 1000
    print(
        f"\nload: {CLIENTS} clients, {CONSUMERS} consumers x 2 threads, {RUNS} runs, "
        f"CSV {BIG_ROWS} rows ({big_bytes / 1e6:.1f} MB)\n"
        f"  requests {len(latencies)} (polls {figures['polls']}, downloads "
        f"{figures['downloads']}), errors {len(figures['errors'])}, "
        f"p50 {p50:.0f} ms, p95 {p95:.0f} ms\n"
        f"  runs done {done}/{RUNS} in {figures['drain']:.1f} s, executed {len(per_tracker)}, "
        f"duplicates {duplicates}\n"
        f"  peak RSS: server {figures['server_rss']:.0f} MB, consumers "
        f"{', '.join(f'{m:.0f}' for m in figures['consumer_rss'])} MB"
    )
    assert figures["errors"] == [], figures["errors"][:10]
    assert done == RUNS
    assert set(per_tracker) == set(run_ids) and duplicates == 0
    assert figures["downloads"] >= CLIENTS  # every client downloaded the big CSV at least once
    assert figures["server_rss"] < SERVER_RSS_LIMIT_MB
    assert max(figures["consumer_rss"]) < CONSUMER_RSS_LIMIT_MB


def _drive(url, token, run_ids, big_tracker, big_bytes, runtime, server_pids, consumer_pids):
    """Clients poll and download until every run is finished (at least 20 s)."""
    headers = {"Authorization": f"Bearer {token}"}
    stop = threading.Event()
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    counts = {"polls": 0, "downloads": 0}
    peaks = {pid: 0.0 for pid in server_pids + consumer_pids}

    def client(seed: int) -> None:
        rng = random.Random(seed)
        session = requests.Session()
        first = True
        while not stop.is_set():
            download = first or rng.random() < 0.08
            first = False
            path = (
                f"/api/v1/trackers/{big_tracker}/result.csv"
                if download
                else f"/api/v1/trackers/{rng.choice(run_ids)}"
            )
            started = time.monotonic()
            try:
                with session.get(url + path, headers=headers, stream=True, timeout=60) as answer:
                    size = sum(len(chunk) for chunk in answer.iter_content(65536))
                    ok = answer.status_code == 200 and (not download or size == big_bytes)
                    if not ok:
                        with lock:
                            errors.append(f"{path}: {answer.status_code} {size}")
            except requests.RequestException as exc:
                with lock:
                    errors.append(f"{path}: {exc}")
                continue
            with lock:
                latencies.append(time.monotonic() - started)
                counts["downloads" if download else "polls"] += 1

    def sample() -> None:
        while not stop.is_set():
            for pid in peaks:
                peaks[pid] = max(peaks[pid], rss_mb(pid))
            time.sleep(0.5)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    threads.append(threading.Thread(target=sample, daemon=True))
    started = time.monotonic()
    for thread in threads:
        thread.start()
    deadline = started + 240
    drain = None
    while time.monotonic() < deadline:
        with runtime.session_factory() as session:
            left = session.scalar(
                select(func.count()).where(
                    Tracker.id.in_(run_ids),
                    Tracker.status.in_([TrackerStatus.QUEUED.value, TrackerStatus.RUNNING.value]),
                )
            )
        if left == 0 and drain is None:
            drain = time.monotonic() - started
        if drain is not None and time.monotonic() - started >= 20:
            break
        time.sleep(1)
    stop.set()
    for thread in threads:
        thread.join(timeout=70)
    return {
        "latencies": latencies,
        "errors": errors,
        "polls": counts["polls"],
        "downloads": counts["downloads"],
        "drain": drain if drain is not None else float("nan"),
        "server_rss": max(peaks[p] for p in server_pids),
        "consumer_rss": [peaks[p] for p in consumer_pids],
    }
