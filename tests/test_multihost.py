"""DanceCat across hosts: an app-database + Redis host, two web hosts, two consumer hosts,
and a warehouse host holding the database the jobs query.

The hosts are Linux network namespaces on one bridge (``tests/network_hosts.py``), each
with its own addresses, ports and hostname, talking over TCP only; no host shares a disk
with another (the result store is ``database``). Everything is a real process: a private
PostgreSQL cluster and redis-server (with a password) on the database host, another
PostgreSQL cluster on the warehouse host, ``dancecat serve`` on the web hosts, ``dancecat
worker`` on the consumer hosts, each started the way docs/DEPLOY.md says (same settings
everywhere but ``HOME``; ``dancecat init`` once).

The workload: runs triggered through both web hosts' API, every minute a cron schedule per
scheduled job, each result downloaded from the *other* web host and compared byte for byte
with what ``psql \\copy`` makes of the same query. While it runs: every process of one
consumer host is killed mid-run (and the consumer started again, as systemd would), the
other consumer host's link to Redis is cut for 30 s, Redis is restarted (empty: no
persistence), the app database's PostgreSQL is restarted. Afterwards every run has
finished exactly once (the killed host's runs, on a read-only connection, ran once more).
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import hashlib
import itertools
import os
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet
from network_hosts import Lan
from private_services import PrivatePostgres, PrivateRedis
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from test_web_helpers import make_user
from test_worker import BIN

from dancecat_core.models import ResultChunk, Tracker, TrackerStatus
from dancecat_core.runtime import Runtime, build_runtime
from dancecat_core.settings import load_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

UTC = dt.UTC
WEB_PORT = 6543
APP_PASSWORD = "app-" + secrets.token_hex(8)
READER_PASSWORD = "reader-" + secrets.token_hex(8)
# A few milliseconds; one 300-row CSV.
QUICK_SQL = "SELECT g AS id, md5(g::text) AS hash FROM generate_series(1, 300) AS g"
# About 3 s, streamed: 60,000 rows (2.8 MB, three 1 MiB chunks in the database store) with a
# 50 ms pause every 1,000 rows, so a kill lands in the middle of writing a result.
SLOW_SQL = (
    "SELECT g AS id, md5(g::text) AS hash, g * 1.5 AS amount FROM generate_series(1, 60000) AS g "
    "WHERE g % 1000 <> 0 OR pg_sleep(0.05) IS NOT NULL"
)
SCHEDULED_JOBS = 3
STALE_SECONDS = 15
FREQUENCY_SECONDS = 5
REDIS_CUT_SECONDS = 30
TRIGGER_PACE_SECONDS = 1.5
FINISHED = {TrackerStatus.SUCCESS.value, TrackerStatus.FAILED.value}


@pytest.fixture
def lan() -> Iterator[Lan]:
    network = Lan()
    try:
        yield network
    finally:
        network.close()


class Cluster:
    """The five hosts, their services and processes, and the settings they share."""

    def __init__(self, lan: Lan, tmp_path: Path, stack: contextlib.ExitStack) -> None:
        self.lan = lan
        self.tmp = tmp_path
        self.db_host = lan.add_host("db", addresses=2)  # PostgreSQL, Redis
        self.warehouse_host = lan.add_host("warehouse")
        self.webs = [lan.add_host(f"web{i}") for i in (1, 2)]
        self.workers = [lan.add_host(f"work{i}") for i in (1, 2)]
        pg_address, redis_address = self.db_host.addresses
        self.pg = PrivatePostgres(
            "scram-sha-256", address=pg_address, netns=self.db_host.netns, network=lan.network
        )
        stack.callback(self.pg.close)
        self.pg.sql(f"CREATE ROLE dancecat LOGIN PASSWORD '{APP_PASSWORD}'")
        self.pg.sql("ALTER DATABASE dancecat OWNER TO dancecat")
        self.warehouse = PrivatePostgres(
            "scram-sha-256",
            address=self.warehouse_host.address,
            netns=self.warehouse_host.netns,
            network=lan.network,
        )
        stack.callback(self.warehouse.close)
        self.warehouse.sql(f"CREATE ROLE reader LOGIN PASSWORD '{READER_PASSWORD}'")
        self.redis = PrivateRedis(
            address=redis_address, netns=self.db_host.netns, password=secrets.token_hex(12)
        )
        stack.callback(self.redis.close)
        self.shared = {
            "DANCECAT_DATABASE_URL": (
                f"postgresql+psycopg2://dancecat:{APP_PASSWORD}@{pg_address}:{self.pg.port}"
                "/dancecat"
            ),
            "DANCECAT_REDIS_URL": self.redis.url,
            "DANCECAT_RESULT_STORE": "database",
            "DANCECAT_SECRET_KEY": secrets.token_urlsafe(32),
            "DANCECAT_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "DANCECAT_TIMEZONE": "UTC",
            "DANCECAT_WORKER_STALE_SECONDS": str(STALE_SECONDS),
            "DANCECAT_FREQUENCY_INTERVAL_SECONDS": str(FREQUENCY_SECONDS),
        }
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs: list[Path] = []

    def env(self, name: str) -> dict[str, str]:
        """The environment of a process on host ``name``: the shared settings, a home of
        its own."""
        home = self.tmp / name
        home.mkdir(exist_ok=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith("DANCECAT_")}
        return {**base, **self.shared, "DANCECAT_HOME": str(home)}

    def runtime(self) -> Runtime:
        """The test's own view of the app database (over the bridge, as a client host)."""
        return build_runtime(load_settings(environ=self.env("client")))

    def start(self, host, *args: str) -> subprocess.Popen:
        log = self.tmp / f"{host.name}-{len(self.logs)}.log"
        self.logs.append(log)
        process = host.start([str(BIN / "dancecat"), *args], self.env(host.name), log)
        self.processes[host.name] = process
        return process

    def web_url(self, index: int) -> str:
        return f"http://{self.webs[index].address}:{WEB_PORT}"

    def start_web(self, index: int) -> None:
        host = self.webs[index]
        self.start(host, "serve", "--host", host.address, "--port", str(WEB_PORT))
        wait_for(
            f"{host.name} to answer",
            lambda: requests.get(f"{self.web_url(index)}/api/v1/openapi.json", timeout=2).ok,
            timeout=60,
            logs=self.log_tails,
        )

    def start_worker(self, index: int) -> subprocess.Popen:
        return self.start(self.workers[index], "worker", "--workers", "2")

    def log_text(self, prefix: str = "") -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in self.logs if p.name.startswith(prefix)
        )

    def log_tails(self) -> str:
        return "\n".join(
            f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-25:])
            for p in self.logs
        )

    def reference_csv(self, sql: str) -> bytes:
        """The query's CSV as PostgreSQL's own client writes it (the floor DanceCat's
        canonical CSV equals for these column types)."""
        done = subprocess.run(
            ["psql", "-X", "-q", "-h", self.warehouse.address, "-p", str(self.warehouse.port),
             "-U", "reader", "-d", "dancecat", "-c", f"\\copy ({sql}) TO STDOUT CSV HEADER"],
            env={**os.environ, "PGPASSWORD": READER_PASSWORD}, capture_output=True, check=True,
        )  # fmt: skip
        return done.stdout


def wait_for(
    what: str, check: Callable[[], object], timeout: float, logs: Callable[[], str] = str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # a check may meet a service mid-restart
            if check():
                return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}\n{logs()}")


def retried(read: Callable[[], object]) -> object:
    """A read of the app database that waits out its restart."""
    for _ in range(120):
        try:
            return read()
        except OperationalError:
            time.sleep(0.5)
    return read()


class Workload:
    """Clients on the machine's side of the bridge: each web host gets one thread queuing
    runs through its API; one more thread follows every run from the *other* web host
    and downloads its result there. Every answer that is not what it should be is kept
    with its time, to be judged against the fault windows afterwards."""

    def __init__(self, cluster: Cluster, token: str, jobs: dict[int, bytes], picks: list[int]):
        self.cluster = cluster
        self.headers = {"Authorization": f"Bearer {token}"}
        self.digests = {job: hashlib.sha256(data).hexdigest() for job, data in jobs.items()}
        self.picks = picks
        self.origin: dict[int, int] = {}  # tracker id -> index of the web host that queued it
        self.job_of: dict[int, int] = {}
        self.verified: set[int] = set()
        self.downloads = collections.Counter()  # web host index -> downloads
        self.problems: list[tuple[float, str]] = []
        self.stop_queuing = threading.Event()
        self.stop_following = threading.Event()
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._queue, args=(i,), daemon=True) for i in (0, 1)
        ] + [threading.Thread(target=self._follow, daemon=True)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _problem(self, text: str) -> None:
        with self.lock:
            self.problems.append((time.monotonic(), text))

    def _queue(self, index: int) -> None:
        session = requests.Session()
        session.headers.update(self.headers)
        turn = index
        while not self.stop_queuing.is_set():
            job = self.picks[turn % len(self.picks)]
            turn += 1
            url = f"{self.cluster.web_url(index)}/api/v1/jobs/{job}/runs"
            try:
                answer = session.post(url, json={}, timeout=30)
            except requests.RequestException as exc:
                self._problem(f"POST {url}: {exc}")
            else:
                if answer.status_code == 202:
                    tracker_id = answer.json()["tracker"]["id"]
                    with self.lock:
                        self.origin[tracker_id] = index
                        self.job_of[tracker_id] = job
                else:
                    self._problem(f"POST {url}: {answer.status_code} {answer.text[:200]}")
            self.stop_queuing.wait(TRIGGER_PACE_SECONDS)

    def download(self, session: requests.Session, tracker_id: int, index: int, job: int) -> bool:
        """Download a run's CSV from web host ``index``; True when it is the job's bytes."""
        url = f"{self.cluster.web_url(index)}/api/v1/trackers/{tracker_id}/result.csv"
        digest = hashlib.sha256()
        try:
            with session.get(url, stream=True, timeout=60) as answer:
                if answer.status_code != 200:
                    self._problem(f"GET {url}: {answer.status_code} {answer.text[:200]}")
                    return False
                for chunk in answer.iter_content(1 << 16):
                    digest.update(chunk)
        except requests.RequestException as exc:
            self._problem(f"GET {url}: {exc}")
            return False
        with self.lock:
            self.downloads[index] += 1
        if digest.hexdigest() != self.digests[job]:
            self._problem(f"GET {url}: the bytes differ from the job's reference CSV")
            return False
        return True

    def _follow(self) -> None:
        session = requests.Session()
        session.headers.update(self.headers)
        while not self.stop_following.is_set():
            with self.lock:
                waiting = [t for t in self.origin if t not in self.verified]
            for tracker_id in waiting:
                other = 1 - self.origin[tracker_id]
                url = f"{self.cluster.web_url(other)}/api/v1/trackers/{tracker_id}"
                try:
                    answer = session.get(url, timeout=30)
                except requests.RequestException as exc:
                    self._problem(f"GET {url}: {exc}")
                    continue
                if answer.status_code != 200:
                    self._problem(f"GET {url}: {answer.status_code} {answer.text[:200]}")
                    continue
                status = answer.json()["tracker"]["status"]
                if status == TrackerStatus.SUCCESS.value and self.download(
                    session, tracker_id, other, self.job_of[tracker_id]
                ):
                    self.verified.add(tracker_id)
                elif status not in (TrackerStatus.QUEUED.value, TrackerStatus.RUNNING.value):
                    self.verified.add(tracker_id)  # judged from the database at the end
            self.stop_following.wait(0.5)

    def join(self) -> None:
        self.stop_queuing.set()
        self.stop_following.set()
        for thread in self.threads:
            thread.join(timeout=120)


def api(method: str, url: str, token: str, **kwargs) -> dict:
    answer = requests.request(
        method, url, headers={"Authorization": f"Bearer {token}"}, timeout=30, **kwargs
    )
    assert answer.ok, f"{method} {url}: {answer.status_code} {answer.text}"
    return answer.json()


def trackers_of(runtime: Runtime, job_ids: list[int]) -> list[Tracker]:
    def read() -> list[Tracker]:
        with runtime.session_factory() as session:
            return list(session.scalars(select(Tracker).where(Tracker.job_id.in_(job_ids))))

    return retried(read)  # type: ignore[return-value]


def partial_chunks(runtime: Runtime) -> int:
    def read() -> int:
        with runtime.session_factory() as session:
            return session.scalar(
                select(func.count(func.distinct(ResultChunk.key))).where(
                    ResultChunk.key.like(".partial-%")
                )
            )

    return retried(read)  # type: ignore[return-value]


def runs_per_tracker(logs: str) -> collections.Counter:
    return collections.Counter(int(t) for t in re.findall(r"tracker (\d+): running job", logs))


def minute_floor(moment: dt.datetime) -> dt.datetime:
    return moment.replace(second=0, microsecond=0)


def test_five_hosts_survive_a_killed_consumer_a_cut_link_and_restarts(lan, tmp_path):
    with contextlib.ExitStack() as stack:
        cluster = Cluster(lan, tmp_path, stack)
        _run(cluster)


def _run(cluster: Cluster) -> None:
    lan = cluster.lan
    web1 = cluster.webs[0]
    work1, work2 = cluster.workers
    started = time.monotonic()

    # -- deploy as docs/DEPLOY.md says: init once, then the web hosts and the consumers ----
    done = web1.run([str(BIN / "dancecat"), "init"], cluster.env(web1.name))
    assert done.returncode == 0, done.stderr
    runtime = cluster.runtime()
    token = make_user(runtime, "ops@example.com", admin=True).token
    cluster.start_web(0)
    cluster.start_web(1)
    connection = api(
        "POST",
        f"{cluster.web_url(0)}/api/v1/connections",
        token,
        json={
            "name": "warehouse", "driver": "postgresql", "host": cluster.warehouse.address,
            "port": cluster.warehouse.port, "database": "dancecat", "user": "reader",
            "password": READER_PASSWORD,
        },
    )["connection"]  # fmt: skip

    def new_job(name: str, sql: str, schedules: list[dict] | None = None) -> dict:
        body = {"name": name, "connection_id": connection["id"], "query": sql}
        if schedules:
            body["schedules"] = schedules
        return api("POST", f"{cluster.web_url(1)}/api/v1/jobs", token, json=body)["job"]

    quick = new_job("quick", QUICK_SQL)["id"]
    slow = new_job("slow", SLOW_SQL)["id"]
    every_minute = {
        "type": "cron",
        "cron": "* * * * *",
        "start": dt.datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "timezone": "UTC",
    }
    scheduled = [new_job(f"tick-{i}", QUICK_SQL, [every_minute]) for i in range(SCHEDULED_JOBS)]
    scheduled_ids = [job["id"] for job in scheduled]
    all_jobs = [quick, slow, *scheduled_ids]
    references = {quick: cluster.reference_csv(QUICK_SQL), slow: cluster.reference_csv(SLOW_SQL)}
    references.update({job: references[quick] for job in scheduled_ids})
    worker_pids = [cluster.start_worker(0).pid, cluster.start_worker(1).pid]

    workload = Workload(cluster, token, references, picks=[quick, quick, slow])
    workload.start()
    events: dict[str, float] = {}  # when each fault began and ended (monotonic)
    try:
        # -- 1. every process of consumer host 2 dies mid-run ------------------------------
        def running_on(host, job: int | None = None) -> list[int]:
            with runtime.session_factory() as session:
                query = select(Tracker.id).where(
                    Tracker.status == TrackerStatus.RUNNING.value,
                    Tracker.worker.like(f"{host.hostname}:%"),
                )
                if job is not None:
                    query = query.where(Tracker.job_id == job)
                return list(session.scalars(query))

        wait_for(
            "a slow run on consumer host 2",
            lambda: running_on(work2, slow),
            timeout=90,
            logs=cluster.log_tails,
        )
        time.sleep(2)  # past its first 1 MiB chunk
        killed_pids = work2.kill_everything()
        killed_at = dt.datetime.now(UTC)
        killed = running_on(work2)
        partial_after_kill = partial_chunks(runtime)
        assert worker_pids[1] in killed_pids and killed
        time.sleep(5)
        cluster.start_worker(1)  # systemd's Restart=always

        # -- 2. consumer host 1 loses Redis for 30 s --------------------------------------
        time.sleep(10)
        lan.cut(work1, cluster.redis.address)
        events["cut"] = time.monotonic()
        busy_at_cut = running_on(work1)
        time.sleep(REDIS_CUT_SECONDS)
        lan.restore(work1, cluster.redis.address)
        events["restore"] = time.monotonic()

        # -- 3. Redis restarts empty, 3 s before a minute's scheduled runs are due ------
        now = dt.datetime.now(UTC)
        boundary = minute_floor(now) + dt.timedelta(minutes=1)
        if (boundary - now).total_seconds() < 10:
            boundary += dt.timedelta(minutes=1)
        time.sleep((boundary - now).total_seconds() - 3)
        cluster.redis.kill()
        events["redis down"] = time.monotonic()
        time.sleep(3)
        cluster.redis.start()
        events["redis up"] = time.monotonic()

        # -- 4. PostgreSQL restarts ---------------------------------------------------
        time.sleep(15)
        events["pg down"] = time.monotonic()
        cluster.pg.stop("fast")
        time.sleep(2)
        cluster.pg.start()
        events["pg up"] = time.monotonic()
        time.sleep(15)
    finally:
        workload.stop_queuing.set()
    stopped_at = dt.datetime.now(UTC)
    for job in scheduled:
        schedule = {**job["schedules"][0], "active": False}
        for key in ("next_run_at", "last_run_at"):
            schedule.pop(key)
        api(
            "PATCH",
            f"{cluster.web_url(0)}/api/v1/jobs/{job['id']}",
            token,
            json={"schedules": [schedule]},
        )

    # -- every run ends -----------------------------------------------------------------
    drain_started = time.monotonic()
    wait_for(
        "every run to finish",
        lambda: all(t.status in FINISHED for t in trackers_of(runtime, all_jobs)),
        timeout=240,
        logs=cluster.log_tails,
    )
    drained = time.monotonic() - drain_started
    time.sleep(STALE_SECONDS / 3 + 3)  # a redelivered duplicate lands by now, and must do nothing
    wait_for("the followers to see every run", lambda: set(workload.origin) <= workload.verified,
             timeout=120)  # fmt: skip
    workload.join()
    trackers = {t.id: t for t in trackers_of(runtime, all_jobs)}
    logs = cluster.log_text("work")
    runs = runs_per_tracker(logs)

    # -- none lost, none doubled, none stuck -------------------------------------------
    assert set(workload.origin) <= set(trackers), "a run the API accepted is missing"
    stuck = {i: t.status for i, t in trackers.items() if t.status not in FINISHED}
    assert not stuck, stuck
    killed_set = set(killed)
    for tracker_id, tracker in trackers.items():
        if tracker_id in killed_set:
            # Its worker died with it; the connection is read-only, so it ran again
            # (RUN_RETRIES=1) to Success, and the tracker says why it ran twice.
            assert tracker.status == TrackerStatus.SUCCESS.value, (
                tracker_id, tracker.status, tracker.error,
            )  # fmt: skip
            assert tracker.attempts == 2 and "the worker running it stopped" in tracker.note, (
                tracker_id, tracker.attempts, tracker.note,
            )  # fmt: skip
            assert runs[tracker_id] == 2, (tracker_id, runs[tracker_id])
        else:
            assert tracker.status == TrackerStatus.SUCCESS.value, (
                tracker_id, tracker.status, tracker.error, cluster.log_tails(),
            )  # fmt: skip
            assert runs[tracker_id] == 1, (tracker_id, runs[tracker_id])
    doubled = sum(1 for i in trackers if runs[i] > 1 and i not in killed_set)
    lost = sum(1 for i in workload.origin if i not in trackers) + sum(
        1 for i in trackers if runs[i] == 0
    )

    # -- every download from the other web host is the job's bytes -----------------------
    session = requests.Session()
    session.headers.update(workload.headers)
    for tracker_id, tracker in trackers.items():
        if tracker.status == TrackerStatus.SUCCESS.value:
            other = 1 - workload.origin.get(tracker_id, tracker_id % 2)
            assert workload.download(session, tracker_id, other, tracker.job_id), tracker_id
    late = [
        (round(when - started, 1), what)
        for when, what in workload.problems
        if not events["pg down"] - 1 <= when <= events["pg up"] + 15
    ]
    assert not late, late
    assert workload.downloads[0] and workload.downloads[1]
    assert {workload.origin[i] for i in workload.origin} == {0, 1}

    # -- each schedule: every minute once, none missed ----------------------------------
    last_due = minute_floor(stopped_at)
    occurrences = {}
    for job in scheduled:
        first_due = dt.datetime.fromisoformat(job["schedules"][0]["next_run_at"])
        due = sorted(t.due_at for t in trackers.values() if t.job_id == job["id"])
        occurrences[job["id"]] = len(due)
        assert len(due) == len(set(due))
        assert due[0] == first_due, (job, due)
        assert due[-1] >= last_due, (job, due)
        steps = {b - a for a, b in itertools.pairwise(due)}
        assert steps <= {dt.timedelta(minutes=1)}, (job, due)
    assert boundary in {t.due_at for t in trackers.values() if t.job_id == scheduled_ids[0]}

    # -- what the faults cost -------------------------------------------------------------
    # Upper bound of how soon the dead runs were known: their second start.
    again_after = [(trackers[i].started_at - killed_at).total_seconds() for i in killed_set]
    requeued = len(set(re.findall(r"tracker (\d+): Queued but not on the queue", logs)))
    by_status = collections.Counter(t.status for t in trackers.values())
    print(
        f"\nmultihost: {len(trackers)} runs ({len(workload.origin)} through the API: "
        f"{sum(1 for v in workload.origin.values() if v == 0)} web1, "
        f"{sum(1 for v in workload.origin.values() if v == 1)} web2; "
        f"{sum(occurrences.values())} scheduled over {SCHEDULED_JOBS} schedules), "
        f"{dict(by_status)}\n"
        f"  lost {lost}, doubled {doubled}, stuck 0; downloads web1 {workload.downloads[0]}, "
        f"web2 {workload.downloads[1]}, all byte-identical\n"
        f"  consumer host 2 killed with runs {sorted(killed_set)} Running "
        f"(partial results then: {partial_after_kill}); run again (started) after "
        f"{', '.join(f'{s:.1f}' for s in again_after)} s\n"
        f"  busy on host 1 when its Redis link was cut: {busy_at_cut}; re-enqueued by the "
        f"sweep: {requeued}; drained {drained:.0f} s after the last trigger; "
        f"API problems in the PostgreSQL restart window: {len(workload.problems)}\n"
        f"  partial results left: {partial_chunks(runtime)}; "
        f"total {time.monotonic() - started:.0f} s"
    )
    runtime.engine.dispose()
