"""Latency of ``GET /api/v1/jobs/{id}/latest/result.json`` for a 1,000-row result under
concurrent clients, against a real ``dancecat serve`` on loopback.

    .venv/bin/python bench/web_latency.py [--clients 20] [--requests 100] [--threads 8]

Sets up a private DANCECAT_HOME (app database, user, token), a connection to the bundled
Chinook SQLite, a job selecting 1,000 tracks (9 columns: integers, text, decimals), runs
it once on the embedded worker, fetches the result once (the JSON render is cached beside
the result after the first request, as in production), then has ``--clients`` threads,
each with its own keep-alive connection (``http.client``), fetch it ``--requests``
times. Prints p50, p95,
p99 and throughput as JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
QUERY = "SELECT * FROM Track ORDER BY TrackId LIMIT 1000"
EMAIL = "bench@example.com"
PASSWORD = "correct horse battery staple"


def console(home: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dancecat_core.console", *args],
        env={**os.environ, "DANCECAT_HOME": str(home)},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def register(home: Path) -> str:
    """Sign the bench user in once (first sign-in sets the password); return a token."""
    from dancecat_core.db import session_scope
    from dancecat_core.runtime import build_runtime
    from dancecat_core.services import accounts
    from dancecat_core.settings import load_settings

    runtime = build_runtime(load_settings(environ={"DANCECAT_HOME": str(home)}))
    with session_scope(runtime.session_factory) as session:
        accounts.sign_in(session, runtime.settings, EMAIL, PASSWORD, PASSWORD)
    runtime.engine.dispose()
    return console(home, "token", "create", EMAIL)


def wait_for(url: str, process: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("dancecat serve did not start") from None
            time.sleep(0.1)


def prepare(base: str, token: str, chinook: Path) -> tuple[str, int]:
    """Connection, job, one successful run; returns the result URL and its size."""
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    connection = api.post(
        f"{base}/connections",
        json={"name": "chinook", "driver": "sqlite", "database": str(chinook)},
        timeout=10,
    ).json()["connection"]
    job = api.post(
        f"{base}/jobs",
        json={"name": "1000 tracks", "connection_id": connection["id"], "query": QUERY},
        timeout=10,
    ).json()["job"]
    tracker = api.post(f"{base}/jobs/{job['id']}/runs", timeout=10).json()["tracker"]
    deadline = time.monotonic() + 60
    while tracker["status"] in ("Queued", "Running"):
        if time.monotonic() > deadline:
            raise SystemExit("the run did not finish in 60 s")
        time.sleep(0.1)
        tracker = api.get(f"{base}/trackers/{tracker['id']}", timeout=10).json()["tracker"]
    if tracker["status"] != "Success" or tracker["row_count"] != 1000:
        raise SystemExit(f"unexpected run: {tracker}")
    url = f"{base}/jobs/{job['id']}/latest/result.json"
    first = api.get(url, timeout=30)
    first.raise_for_status()
    assert len(first.json()["rows"]) == 1000
    return url, len(first.content)


def hammer(url: str, token: str, clients: int, per_client: int) -> dict[str, float]:
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    start_line = threading.Barrier(clients)

    parts = urllib.parse.urlsplit(url)
    headers = {"Authorization": f"Bearer {token}"}

    def client() -> None:
        # http.client over one keep-alive connection: the lightest client the stdlib has,
        # so the figures are the server's, not a heavy client library's.
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        mine: list[float] = []
        start_line.wait()
        for _ in range(per_client):
            began = time.perf_counter()
            connection.request("GET", parts.path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            mine.append(time.perf_counter() - began)
            if response.status != 200 or not body.endswith(b"]}\n"):
                with lock:
                    failures.append(f"{response.status} {len(body)}")
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise SystemExit(f"{len(failures)} failed requests, e.g. {failures[:3]}")
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "clients": clients,
        "p50_ms": round(cuts[49] * 1000, 1),
        "p95_ms": round(cuts[94] * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "requests_per_second": round(len(latencies) / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=100, help="per client")
    parser.add_argument("--threads", type=int, default=8, help="waitress request threads")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dancecat-bench-") as tmp:
        home = Path(tmp) / "home"
        chinook = Path(tmp) / "chinook.sqlite"
        shutil.copyfile(ROOT / "examples" / "chinook.sqlite", chinook)
        console(home, "init")
        console(home, "add-allowed-user", EMAIL)
        token = register(home)
        port = free_port()
        log = open(Path(tmp) / "serve.log", "wb")  # noqa: SIM115 - closed below
        server = subprocess.Popen(
            [
                sys.executable, "-m", "dancecat_core.console", "serve",
                "--port", str(port), "--threads", str(args.threads),
            ],
            env={**os.environ, "DANCECAT_HOME": str(home)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}/api/v1"
            wait_for(f"{base}/openapi.json", server)
            url, size = prepare(base, token, chinook)
            figures = hammer(url, token, args.clients, args.requests)
            figures.update({"result_bytes": size, "rows": 1000, "waitress_threads": args.threads})
            print(json.dumps(figures, indent=2))
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()


if __name__ == "__main__":
    main()
