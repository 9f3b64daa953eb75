"""Running one measured thing in a child process: its time and its own peak RSS.

Every case runs in a process of its own so its peak RSS is its own: ``os.wait4`` returns
the child's ``ru_maxrss`` (kB on Linux), which covers whatever the child did, interpreter
and imports included, and nothing of this process or of the other cases.

Python children (``python -m bench.child CMD JSON``) time the work itself and print one JSON
line last; command-line floors (psql, mariadb) are timed around the process, start to end.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from bench import config


class ChildFailed(RuntimeError):
    pass


@attrs.frozen
class Sample:
    seconds: float
    rss_mb: float
    info: dict[str, Any] = attrs.field(factory=dict)


def _wait(proc: subprocess.Popen, timeout: float | None) -> tuple[int, float]:
    """Wait for ``proc`` (polling, so a timeout is possible) and return (status, maxrss MB)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_maxrss / 1024
        if deadline is not None and time.monotonic() > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            proc.returncode = -9
            raise ChildFailed(f"timed out after {timeout} s: {proc.args!r}")
        time.sleep(0.005)


def command(
    args: Sequence[str], *, stdout_path: Path | None = None, timeout: float | None = None
) -> Sample:
    """Run a command (a database client floor); time it from spawn to exit."""
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        clock = time.perf_counter()
        proc = subprocess.Popen(list(args), stdout=out, stderr=subprocess.PIPE)
        code, rss = _wait(proc, timeout)
        seconds = time.perf_counter() - clock
    finally:
        if stdout_path:
            out.close()
    if code:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise ChildFailed(f"{args[0]} exited {code}: {err.strip()[-1000:]}")
    return Sample(seconds, rss)


def python(
    cmd: str,
    payload: dict[str, Any],
    *,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> Sample:
    """Run ``python -m bench.child cmd`` and take its self-reported time and its peak RSS."""
    proc = subprocess.Popen(
        [config.PYTHON, "-m", "bench.child", cmd, json.dumps(payload)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=config.ROOT,
        env=env,
    )
    # Read pipes in the background so a chatty child never blocks on a full pipe.
    import threading

    chunks: dict[str, bytes] = {}

    def drain(name: str, stream: Any) -> None:
        chunks[name] = stream.read()

    readers = [
        threading.Thread(target=drain, args=("out", proc.stdout)),
        threading.Thread(target=drain, args=("err", proc.stderr)),
    ]
    for reader in readers:
        reader.start()
    code, rss = _wait(proc, timeout)
    for reader in readers:
        reader.join()
    out = chunks.get("out", b"").decode(errors="replace").strip().splitlines()
    if code or not out:
        err = chunks.get("err", b"").decode(errors="replace")
        raise ChildFailed(f"bench.child {cmd} exited {code}: {err.strip()[-3000:]}")
    info = json.loads(out[-1])
    return Sample(float(info.pop("seconds")), rss, info)


class Background:
    """A long-lived child (a worker): start it, wait for its 'ready' line, stop it, get RSS."""

    def __init__(self, cmd: str, payload: dict[str, Any], *, env: dict[str, str] | None = None):
        self.log = open(config.RESULTS / f"{cmd}-{os.getpid()}-{time.time_ns()}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [config.PYTHON, "-m", "bench.child", cmd, json.dumps(payload)],
            stdout=subprocess.PIPE,
            stderr=self.log,
            cwd=config.ROOT,
            env=env,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.strip() == b"ready":
                return
        self.stop()
        raise ChildFailed(f"worker did not start; see {self.log.name}")

    def stop(self) -> float:
        """SIGTERM (huey's graceful-enough stop), then the child's peak RSS in MB."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                _, rss = _wait(self.proc, 30)
            except ChildFailed:
                rss = float("nan")
        else:
            rss = float("nan")
        self.log.close()
        return rss


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
