"""Private, throwaway service instances for tests that must restart or reconfigure one.

The machine's shared PostgreSQL and Redis are never stopped or reconfigured by a test; a
test that needs that starts its own instance here. Each listens on 127.0.0.1 and a free
port, or, given ``netns``, inside that Linux network namespace on ``address`` (a host of
``tests/network_hosts.py``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis
from test_web_helpers import free_port

IN_CI = os.environ.get("CI", "").lower() == "true"


def _missing(why: str) -> None:
    """Fail under CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(why)
    pytest.skip(why)


def _in_netns(netns: str | None, command: list[str]) -> list[str]:
    return ["ip", "netns", "exec", netns, *command] if netns else command


def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]) if found else None


class PrivatePostgres:
    """A throwaway PostgreSQL cluster, run as ``postgres``.

    Local (socket) logins are trusted; TCP logins use ``host_auth`` (trust by default,
    ``scram-sha-256`` where a test needs passwords checked), from loopback and, in a
    namespace, from ``network`` (CIDR).
    """

    def __init__(
        self,
        host_auth: str = "trust",
        *,
        address: str = "127.0.0.1",
        netns: str | None = None,
        network: str | None = None,
    ) -> None:
        bindir = _pg_bindir()
        if bindir is None or shutil.which("runuser") is None or os.geteuid() != 0:
            _missing("needs root, runuser and /usr/lib/postgresql/*/bin to start a private cluster")
        self.bindir = bindir
        self.address = address
        self.netns = netns
        self.dir = Path(tempfile.mkdtemp(prefix="dc-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        # A namespace has ports of its own: the usual one is free there.
        self.port = 5432 if netns else free_port()
        self._as_postgres(
            str(bindir / "initdb"), "-D", str(self.data), "--auth-local=trust",
            f"--auth-host={host_auth}", "-U", "postgres",
            "--no-sync", "-E", "UTF8",
        )  # fmt: skip
        if network:
            with open(self.data / "pg_hba.conf", "a", encoding="utf-8") as hba:
                hba.write(f"host all all {network} {host_auth}\n")
        self.start()
        subprocess.run(
            ["psql", "-h", str(self.dir), "-p", str(self.port), "-U", "postgres", "-qc",
             "CREATE DATABASE dancecat"],
            check=True, capture_output=True,
        )  # fmt: skip
        self.url = f"postgresql+psycopg2://postgres@{address}:{self.port}/dancecat"

    def sql(self, statement: str) -> None:
        """Run ``statement`` as the superuser over the (trusted) local socket."""
        subprocess.run(
            ["psql", "-h", str(self.dir), "-p", str(self.port), "-U", "postgres",
             "-d", "dancecat", "-qc", statement],
            check=True, capture_output=True,
        )  # fmt: skip

    def _as_postgres(self, *command: str) -> None:
        done = subprocess.run(
            _in_netns(self.netns, ["runuser", "-u", "postgres", "--", *command]),
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses={self.address} -c fsync=off "
            "-c max_connections=60"
        )
        self._as_postgres(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.dir / "log"), "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"
        )

    def close(self) -> None:
        with contextlib.suppress(AssertionError):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """A throwaway redis-server without persistence: a restart loses everything queued.

    ``password``: required of clients (``requirepass``); Redis refuses clients from other
    hosts without one (protected mode).
    """

    def __init__(
        self, *, address: str = "127.0.0.1", netns: str | None = None, password: str = ""
    ) -> None:
        if shutil.which("redis-server") is None:
            _missing("redis-server is not installed")
        self.address = address
        self.netns = netns
        self.dir = Path(tempfile.mkdtemp(prefix="dc-redis-"))
        self.port = 6379 if netns else free_port()
        self.password = password
        self.url = f"redis://{f':{password}@' if password else ''}{address}:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            _in_netns(self.netns, [
                "redis-server", "--port", str(self.port), "--bind", self.address,
                "--save", "", "--appendonly", "no", "--dir", str(self.dir),
                *(["--requirepass", self.password] if self.password else []),
            ]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            for _ in range(200):
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return
                time.sleep(0.1)
            raise AssertionError(f"private redis-server on {self.url} did not answer")
        finally:
            client.close()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
