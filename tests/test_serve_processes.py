"""``dancecat serve --processes N`` through real processes: N web processes share one port,
a dead one is replaced, SIGTERM to the parent leaves no child behind, and the embedded
consumer runs in one process of its own however many web processes there are.

Which process answered is read from Linux itself (``/proc/<pid>/fd`` against
``/proc/net/tcp``): the server has no test-only switch.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from test_web_helpers import PASSWORD, ROOT, dancecat, serve

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")

EMAIL = "procs@example.com"


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        found.update(int(child) for child in children)
    return found


def _established_inodes(port: int) -> set[str]:
    """Socket inodes of established connections whose local end is ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _answering(url: str, children: set[int], connections: int = 40) -> dict[int, int]:
    """Open ``connections`` kept-alive connections, each answered once; count per child
    the ones it holds."""
    host, port = url.removeprefix("http://").split(":")
    held = []
    try:
        for _ in range(connections):
            connection = http.client.HTTPConnection(host, int(port), timeout=10)
            connection.request("GET", "/api/v1/openapi.json")
            response = connection.getresponse()
            response.read()
            assert response.status == 200
            held.append(connection)
        established = _established_inodes(int(port))
        return {pid: len(_socket_inodes(pid) & established) for pid in children}
    finally:
        for connection in held:
            connection.close()


def _answering_at_once(url: str, children: set[int], connections: int) -> dict[int, int]:
    """Connect ``connections`` sockets before any sends a request, then have each answered
    once; count per child the ones it holds."""
    host, port = url.removeprefix("http://").split(":")
    held = [http.client.HTTPConnection(host, int(port), timeout=10) for _ in range(connections)]
    try:
        for connection in held:
            connection.connect()
        for connection in held:
            connection.request("GET", "/api/v1/openapi.json")
        for connection in held:
            response = connection.getresponse()
            response.read()
            assert response.status == 200
        established = _established_inodes(int(port))
        return {pid: len(_socket_inodes(pid) & established) for pid in children}
    finally:
        for connection in held:
            connection.close()


def _wait_for(condition, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # a zombie no longer runs; init reaps it


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    dancecat(home, "init")
    dancecat(home, "add-allowed-user", EMAIL)
    return home


def test_two_processes_on_redis_share_the_port_restart_and_stop(home, redis_url):
    env = {"DANCECAT_REDIS_URL": redis_url, "DANCECAT_HUEY_NAME": f"dc-{uuid.uuid4().hex}"}
    server = serve(home, env=env, args=("--processes", "2"))
    live = next(server)
    try:
        parent = live.process.pid
        children = _children(parent)
        assert len(children) == 2, children
        # The parent hands each new connection to the process holding the fewest: one
        # after another, and all at once (as a load of clients connects at its start).
        assert sorted(_answering(live.url, children).values()) == [20, 20]
        port = int(live.url.rsplit(":", 1)[1])
        _wait_for(lambda: not _established_inodes(port))  # closed on the server's side too
        assert sorted(_answering_at_once(live.url, children, 20).values()) == [10, 10]
        assert "with 2 processes" in (home / "serve.log").read_text()

        # A child that dies is replaced, and the new one answers.
        dead = min(children)
        os.kill(dead, signal.SIGKILL)
        _wait_for(lambda: len(_children(parent)) == 2 and dead not in _children(parent))
        replacement = (_children(parent) - children).pop()
        _wait_for(lambda: _answering(live.url, {replacement}, 10)[replacement] > 0)

        # SIGTERM to the parent: it exits and no child stays behind.
        now = _children(parent)
        live.process.send_signal(signal.SIGTERM)
        assert live.process.wait(timeout=30) == 0
        for pid in now:
            _wait_for(lambda pid=pid: _gone(pid), 5)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{live.url}/api/v1/openapi.json", timeout=2)
    finally:
        server.close()


def test_embedded_defaults_run_the_consumer_once(home, tmp_path):
    """No Redis: two web processes and one consumer process; a run queued through one web
    process is run once, and every process stops with the parent."""
    database = tmp_path / "chinook.sqlite"
    shutil.copy(ROOT / "examples" / "chinook.sqlite", database)
    server = serve(home, args=("--processes", "2"))
    live = next(server)
    try:
        log = (home / "serve.log").read_text()
        assert "with 2 processes and an embedded worker process" in log
        children = _children(live.process.pid)
        assert len(children) == 3, children
        browser = requests.Session()  # the first sign-in sets the password
        page = browser.get(f"{live.url}/login", timeout=10).text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        first = browser.post(
            f"{live.url}/login",
            data={"email": EMAIL, "password": PASSWORD, "confirm": PASSWORD, "csrf_token": csrf},
            allow_redirects=False,
            timeout=10,
        )
        assert first.status_code == 303, first.text
        token = dancecat(home, "token", "create", EMAIL).strip()
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {token}"
        connection = api.post(
            live.api("/connections"),
            json={"name": "chinook", "driver": "sqlite", "database": str(database)},
            timeout=10,
        )
        assert connection.status_code == 201, connection.text
        job = api.post(
            live.api("/jobs"),
            json={
                "name": "artists",
                "connection_id": connection.json()["connection"]["id"],
                "query": "SELECT count(*) AS n FROM Artist",
            },
            timeout=10,
        )
        assert job.status_code == 201, job.text
        job_id = job.json()["job"]["id"]
        queued = api.post(live.api(f"/jobs/{job_id}/runs"), timeout=10)
        assert queued.status_code == 202, queued.text

        def finished() -> bool:
            runs = api.get(live.api(f"/jobs/{job_id}/runs"), timeout=10).json()["runs"]
            return runs[0]["status"] not in ("Queued", "Running")

        _wait_for(finished, 60)
        runs = api.get(live.api(f"/jobs/{job_id}/runs"), timeout=10).json()["runs"]
        assert [run["status"] for run in runs] == ["Success"]
        assert runs[0]["row_count"] == 1
        live.process.send_signal(signal.SIGTERM)
        assert live.process.wait(timeout=30) == 0
        for pid in children:
            _wait_for(lambda pid=pid: _gone(pid), 5)
    finally:
        server.close()


@pytest.mark.parametrize("value", ["0", "-1", "two", "1e3", "257"])
def test_a_bad_process_count_is_one_clear_line(home, value):
    done = subprocess.run(
        [sys.executable, "-m", "dancecat_core.console", "serve", "--processes", value],
        env={**os.environ, "DANCECAT_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--processes: must be a whole number from 1 to 256" in done.stderr
    assert "Traceback" not in done.stderr
