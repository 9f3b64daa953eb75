"""Which process runs a tracker, and whether that process is still alive.

A heartbeat tells a worker's death only after ``WORKER_STALE_SECONDS`` of silence. On the
machine the worker ran on there is a faster and surer answer: the kernel knows whether
the process exists. A pid alone is not enough (pids are reused, containers have pid
namespaces of their own, the machine may have rebooted), so a running tracker records
its process as the machine's boot id, the pid namespace, the pid and the process's start
time (in clock ticks since boot, from ``/proc/<pid>/stat``). Another process that sees
the same boot id and pid namespace can tell for certain: the process is gone, or the pid
now belongs to a process started at another time — either way the run died with it.
Anywhere else (another machine, no ``/proc``) the answer is "cannot tell", and the
heartbeat decides as before.
"""

from __future__ import annotations

import functools
import os
import socket

import attrs

_BOOT_ID = "/proc/sys/kernel/random/boot_id"


@attrs.frozen
class WorkerProcess:
    """One process on one boot of one machine, as a tracker records it."""

    host: str  # for people reading the tracker; not used to decide anything
    boot_id: str
    pid_namespace: str
    pid: int
    started: int  # clock ticks since boot

    def to_text(self) -> str:
        return f"{self.boot_id}/{self.pid_namespace}/{self.pid}/{self.started}/{self.host}"

    @classmethod
    def from_text(cls, text: str | None) -> WorkerProcess | None:
        """The process ``to_text`` wrote, or None for anything else (an old row, a typo)."""
        if not text:
            return None
        parts = text.split("/", 4)
        if len(parts) != 5 or not parts[2].isdigit() or not parts[3].isdigit():
            return None
        boot_id, namespace, pid, started, host = parts
        return cls(host, boot_id, namespace, int(pid), int(started))

    def describe(self) -> str:
        return f"process {self.pid} on {self.host}"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    """The process's start time (field 22 of ``/proc/<pid>/stat``), None when it is gone
    or has ended and waits only to be reaped (a zombie runs nothing)."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields[0] in {"Z", "X"}:
        return None
    return int(fields[19])


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


@functools.cache
def _machine() -> tuple[str, str] | None:
    """(boot id, pid namespace) of this process, None where the kernel does not say."""
    boot_id = (_read(_BOOT_ID) or "").strip()
    namespace = _pid_namespace()
    if not boot_id or not namespace:
        return None
    return boot_id, namespace


def current() -> WorkerProcess | None:
    """This process, or None where it cannot be told apart reliably (no ``/proc``)."""
    return _process(os.getpid())


@functools.cache
def _process(pid: int) -> WorkerProcess | None:
    """Per pid: a forked child (``dancecat serve --processes``) is a process of its own."""
    machine = _machine()
    started = _start_ticks(pid)
    if machine is None or started is None:
        return None
    return WorkerProcess(socket.gethostname(), machine[0], machine[1], pid, started)


def is_dead(process: WorkerProcess) -> bool:
    """True only when this process can see for certain that ``process`` has ended: it ran
    on this boot of this machine, in this pid namespace, and its pid is gone or now
    belongs to a process started at another moment. False when alive or cannot tell."""
    if _machine() != (process.boot_id, process.pid_namespace):
        return False
    return _start_ticks(process.pid) != process.started
