"""Real peers for the file destinations, started by the test that needs them.

* ``Sshd``: Debian's OpenSSH ``sshd`` as a non-daemon on a free port, with its own config,
  host key and ``authorized_keys`` in a temporary folder; the test logs in as the current
  user with a key it generated.
* ``MotoServer``: moto's S3-compatible server (``moto_server``) as a subprocess on a free
  port.

A missing peer skips locally and fails under ``CI=true`` (``conftest.service_missing``).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import service_missing
from test_web_helpers import free_port

SSHD = "/usr/sbin/sshd"


def _wait_port(port: int, process: subprocess.Popen, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout} s")


def keygen(path: Path, kind: str = "ed25519") -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "dancecat-test", "-f", str(path)],
        check=True,
    )
    return path


class Sshd:
    """One ``sshd -D`` with a config of its own; ``stop()`` ends it."""

    def __init__(self, root: Path, client_key: Path, host_key: Path | None = None):
        if not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None:
            service_missing("sshd", f"{SSHD} is missing (Debian's openssh-server)")
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.user = getpass.getuser()
        self.port = free_port()
        self.host_key = host_key or keygen(root / "ssh_host_ed25519_key")
        authorized = root / "authorized_keys"
        authorized.write_text(Path(f"{client_key}.pub").read_text())
        authorized.chmod(0o600)
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation
        config = root / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.host_key}",
                    f"AuthorizedKeysFile {authorized}",
                    f"PidFile {root / 'sshd.pid'}",
                    "StrictModes no",
                    "UsePAM no",
                    "PasswordAuthentication yes",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "Subsystem sftp internal-sftp",
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(root / "sshd.log", "wb"),  # noqa: SIM115 - closed with the process
        )
        try:
            _wait_port(self.port, self.process, "sshd")
        except RuntimeError as exc:
            self.stop()
            log = (root / "sshd.log").read_text(errors="replace")
            service_missing("sshd", f"{exc}: {log[-500:]}")

    def public_host_key(self) -> str:
        """The host key as ``TYPE BASE64``, a known-hosts entry's last two fields."""
        kind, data = Path(f"{self.host_key}.pub").read_text().split()[:2]
        return f"{kind} {data}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class MotoServer:
    """moto's S3-compatible server on a free port; ``endpoint`` is its address."""

    def __init__(self, root: Path):
        server = Path(sys.executable).with_name("moto_server")
        if not server.exists():
            service_missing("moto_server", "install the test extra: pip install -e '.[test]'")
        self.port = free_port()
        root.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [str(server), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=open(root / "moto.log", "wb"),  # noqa: SIM115 - closed with the process
        )
        try:
            _wait_port(self.port, self.process, "moto_server", timeout=60)
        except RuntimeError as exc:
            self.stop()
            service_missing("moto_server", str(exc))
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
