"""Several hosts on one machine: Linux network namespaces on a private bridge.

For tests that must see DanceCat across a real network (``tests/test_multihost.py``). Each
``Host`` is a network namespace with its own loopback, addresses and ports, joined to the
others by a veth pair on one bridge; its processes also get a UTS namespace with the host's
own hostname, so ``socket.gethostname()`` (and so a worker's name) differs per host as it
would on separate machines. The bridge has the subnet's ``.254`` on the machine's side, so
the test process itself is a client on the same network. Nothing routes the subnet
anywhere else (no default route in any namespace), so traffic stays between these hosts.

Cutting a link between two hosts is a pair of policy-routing rules (``ip rule … blackhole``)
rather than ``iptables``/``tc``, which this machine's kernel and packages may not have: the
sender drops its packets to one address and that address's host drops its answers, so
open TCP connections hang (no reset), exactly like a cable pulled, and resume when the rules
go.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
BRIDGE_SIDE = 254


def _ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _free_subnet() -> str:
    """A 10.x.y.0/24 that no interface or route of this machine uses."""
    taken = _ip("-4", "addr") + _ip("-4", "route")
    for _ in range(100):
        prefix = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}"
        if f"{prefix}." not in taken:
            return prefix
    raise RuntimeError("no free 10.x.y.0/24 subnet found")


class Host:
    """One network namespace: a host with addresses on the bridge and a hostname."""

    def __init__(self, lan: Lan, name: str, addresses: Sequence[str]) -> None:
        self.lan = lan
        self.name = name
        self.netns = f"{lan.tag}-{name}"
        self.hostname = self.netns
        self.addresses = tuple(addresses)

    @property
    def address(self) -> str:
        return self.addresses[0]

    def command(self, command: Sequence[str]) -> list[str]:
        """``command`` as run on this host: in its namespace, under its own hostname."""
        return [
            "ip", "netns", "exec", self.netns,
            "unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', self.hostname,
            *command,
        ]  # fmt: skip

    def start(self, command: Sequence[str], env: Mapping[str, str], log: Path) -> subprocess.Popen:
        """Start a long-running process here; its output goes to ``log``. Every layer
        (``ip``, ``unshare``, ``sh``) execs the next, so the process's pid is the command's."""
        with open(log, "ab") as out:
            return subprocess.Popen(
                self.command(command), env=dict(env), stdout=out, stderr=subprocess.STDOUT
            )

    def run(
        self, command: Sequence[str], env: Mapping[str, str], timeout: float = 120
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.command(command), env=dict(env), capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip

    def pids(self) -> list[int]:
        """Every process on this host (in its network namespace), any parent."""
        return [int(p) for p in _ip("netns", "pids", self.netns).split()]

    def kill_everything(self, timeout: float = 20) -> list[int]:
        """SIGKILL every process of this host, as a power cut would; return their pids."""
        killed: list[int] = []
        deadline = time.monotonic() + timeout
        while pids := self.pids():
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                if pid not in killed:
                    killed.append(pid)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: processes {pids} survive SIGKILL")
            time.sleep(0.05)
        return killed


class Lan:
    """A bridge and the hosts on it; ``close`` removes every trace (call it in a finally)."""

    def __init__(self) -> None:
        missing = [tool for tool in ("ip", "unshare", "hostname") if shutil.which(tool) is None]
        if missing or os.geteuid() != 0:
            why = f"network namespaces need root and {', '.join(missing) or 'ip'}"
            if IN_CI:
                pytest.fail(why)
            pytest.skip(why)
        # Interface names are at most 15 characters: dcXXXX-br, dcXXXXvN, dcXXXXhN.
        self.tag = f"dc{uuid.uuid4().hex[:4]}"
        self.bridge = f"{self.tag}-br"
        self.prefix = _free_subnet()
        self.network = f"{self.prefix}.0/24"
        self.hosts: list[Host] = []
        self._next_address = 1
        _ip("link", "add", self.bridge, "type", "bridge")
        try:
            _ip("addr", "add", f"{self.prefix}.{BRIDGE_SIDE}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
        except Exception:
            self.close()
            raise

    def add_host(self, name: str, addresses: int = 1) -> Host:
        """A new host with ``addresses`` addresses of its own on the bridge."""
        index = len(self.hosts)
        outside, inside = f"{self.tag}v{index}", f"{self.tag}h{index}"
        own = [f"{self.prefix}.{self._next_address + i}" for i in range(addresses)]
        self._next_address += addresses
        host = Host(self, name, own)
        self.hosts.append(host)
        _ip("netns", "add", host.netns)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", host.netns)
        _ip("link", "set", outside, "master", self.bridge, "up")
        for address in own:
            _ip("-n", host.netns, "addr", "add", f"{address}/24", "dev", inside)
        _ip("-n", host.netns, "link", "set", "lo", "up")
        _ip("-n", host.netns, "link", "set", inside, "up")
        return host

    def owner(self, address: str) -> Host:
        return next(h for h in self.hosts if address in h.addresses)

    def _link_rules(self, host: Host, address: str, action: str) -> None:
        _ip("-n", host.netns, "rule", action, "to", address, "blackhole")
        for own in host.addresses:
            _ip(
                "-n", self.owner(address).netns, "rule", action,
                "from", address, "to", own, "blackhole",
            )  # fmt: skip

    def cut(self, host: Host, address: str) -> None:
        """Drop every packet between ``host`` and ``address`` (both ways, silently)."""
        self._link_rules(host, address, "add")

    def restore(self, host: Host, address: str) -> None:
        self._link_rules(host, address, "del")

    def close(self) -> None:
        for host in self.hosts:
            with contextlib.suppress(Exception):
                host.kill_everything()
            with contextlib.suppress(Exception):
                _ip("netns", "del", host.netns)  # takes its end of the veth pair along
        with contextlib.suppress(Exception):
            _ip("link", "del", self.bridge)
