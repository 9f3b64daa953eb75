"""Private, throwaway service instances for tests that must restart or reconfigure one.

The machine's shared PostgreSQL is never stopped or reconfigured by a test; a test that
needs that starts its own cluster here.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from test_web_helpers import free_port

IN_CI = os.environ.get("CI", "").lower() == "true"


def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]) if found else None


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on a free port, run as ``postgres``.

    Local (socket) logins are trusted; TCP logins use ``host_auth`` (trust by default,
    ``scram-sha-256`` where a test needs passwords checked).
    """

    def __init__(self, host_auth: str = "trust") -> None:
        bindir = _pg_bindir()
        if bindir is None or shutil.which("runuser") is None or os.geteuid() != 0:
            why = "needs root, runuser and /usr/lib/postgresql/*/bin to start a private cluster"
            if IN_CI:
                pytest.fail(why)
            pytest.skip(why)
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="dc-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.port = free_port()
        self._as_postgres(
            str(bindir / "initdb"), "-D", str(self.data), "--auth-local=trust",
            f"--auth-host={host_auth}", "-U", "postgres",
            "--no-sync", "-E", "UTF8",
        )  # fmt: skip
        self.start()
        subprocess.run(
            ["psql", "-h", str(self.dir), "-p", str(self.port), "-U", "postgres", "-qc",
             "CREATE DATABASE dancecat"],
            check=True, capture_output=True,
        )  # fmt: skip
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/dancecat"

    def sql(self, statement: str) -> None:
        """Run ``statement`` as the superuser over the (trusted) local socket."""
        subprocess.run(
            ["psql", "-h", str(self.dir), "-p", str(self.port), "-U", "postgres",
             "-d", "dancecat", "-qc", statement],
            check=True, capture_output=True,
        )  # fmt: skip

    def _as_postgres(self, *command: str) -> None:
        done = subprocess.run(
            ["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
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
