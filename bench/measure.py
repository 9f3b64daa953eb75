"""Running one measured thing in a child process: its time and its own peak RSS.

Every case runs in a process of its own so its peak RSS is its own: the child's ``VmHWM``
(``/proc/PID/status``, polled while it runs, and reported by Python children themselves at
the end), which covers whatever the child did, interpreter and imports included, and
nothing of this process or of the other cases.

Python children (``python -m bench.child CMD JSON``) time the work itself and print one JSON
line last; command-line floors (psql, mariadb) are timed around the process, start to end.
"""

from __future__ import annotations

import contextlib
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


def vmhwm_mb(pid: int | str = "self") -> float:
    """The process's peak RSS so far (``VmHWM``), or NaN once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return float("nan")


def _wait(proc: subprocess.Popen, timeout: float | None) -> tuple[int, float]:
    """Wait for ``proc`` (polling, so a timeout is possible); return (status, peak RSS MB).

    The peak is the child's own ``VmHWM``, polled while it runs. Not ``ru_maxrss``: Linux
    carries the parent's high-water mark into a forked child across ``exec``, so a child of
    a big parent would report the parent's size.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    peak = float("nan")
    while True:
        seen = vmhwm_mb(proc.pid)
        if seen == seen and not seen < peak:  # not NaN, and a new high
            peak = seen
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            if peak != peak:  # never seen (too quick, or no /proc): the kernel's figure
                peak = usage.ru_maxrss / 1024
            return proc.returncode, peak
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
    own = info.pop("vmhwm_mb", None)  # the child's own last word on its peak
    if own is not None and (rss != rss or own > rss):
        rss = own
    return Sample(float(info.pop("seconds")), rss, info)


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU a process has used so far (all its threads), or NaN."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def server_pid(name: str) -> int | None:
    """The oldest local process called ``name`` (the database server), if there is one."""
    done = subprocess.run(["pgrep", "-o", "-x", name], capture_output=True, text=True)
    return int(done.stdout) if done.returncode == 0 and done.stdout.strip().isdigit() else None


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
        """The child's peak RSS in MB (read before it stops), then SIGTERM."""
        rss = vmhwm_mb(self.proc.pid)
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(ChildFailed):
                _wait(self.proc, 30)
        self.log.close()
        return rss


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
