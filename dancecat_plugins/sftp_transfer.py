"""SFTP with paramiko: the host key check and the atomic upload of ``sftp_destination``.

Kept apart so that paramiko is imported on the first delivery, not whenever plugins load.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import posixpath
import re
import secrets
import socket
import threading
from collections.abc import Iterable
from pathlib import Path

import attrs
import paramiko

from dancecat_core.outbound import connect
from dancecat_plugins.destination_files import DeliveryError
from dancecat_plugins.sftp_target import TRUST_FIRST_USE, SftpTarget

KNOWN_HOSTS_FILE = "sftp_known_hosts"
KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Host key algorithms that sign with a key of the stored type.
_KEY_ALGORITHMS = {
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
}
# Serialises writes to the known-hosts file inside one process (workers are threads).
_known_hosts_lock = threading.Lock()


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's ``SHA256:...`` form, as ``ssh-keygen -l`` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


class KnownHosts:
    """Host keys learned on first use, in an OpenSSH known-hosts file (``ssh-keygen -F`` and
    ``-R`` read and edit it)."""

    def __init__(self, path: Path):
        self.path = path

    def _load(self) -> paramiko.HostKeys:
        keys = paramiko.HostKeys()
        if self.path.exists():
            keys.load(str(self.path))
        return keys

    def lookup(self, address: str) -> list[paramiko.PKey]:
        found = self._load().lookup(address)
        return list(found.values()) if found else []

    def remember(self, address: str, key: paramiko.PKey) -> None:
        with _known_hosts_lock:
            keys = self._load()
            if keys.lookup(address):
                return
            keys.add(address, key.get_name(), key)
            tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}")
            keys.save(str(tmp))
            tmp.chmod(0o600)
            tmp.replace(self.path)


@attrs.frozen
class Login:
    """How to log in: the destination's password, else DanceCat's key."""

    password: str | None = attrs.field(default=None, repr=False)
    key_file: Path | None = None


def upload(
    target: SftpTarget,
    name: str,
    chunks: Iterable[bytes],
    key: str,
    *,
    login: Login,
    known_hosts: KnownHosts,
    timeout: float,
    allow_private: bool,
) -> str:
    """Write ``chunks`` to ``target.folder + name`` atomically; return the path written.
    Raises ``DeliveryError`` with one line saying what went wrong."""
    if "/" in name or name in ("", ".", ".."):
        raise DeliveryError(f"{name!r} is not a file name")
    if not KEY.fullmatch(key):
        raise DeliveryError(f"{key!r} is not a delivery key")
    pkey = _login_key(login)
    sock = _connect(target, timeout, allow_private)
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = timeout
        transport.auth_timeout = timeout
        expected = _expected_keys(target, known_hosts)
        if expected:
            wanted = [
                a for k in expected for a in _KEY_ALGORITHMS.get(k.get_name(), (k.get_name(),))
            ]
            options = transport.get_security_options()
            offered = [a for a in wanted if a in options.key_types]
            if offered:
                options.key_types = offered
        try:
            transport.start_client(timeout=timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise DeliveryError(
                f"no SSH session with {target.host} port {target.port}: {exc}"
            ) from None
        _check_server_key(target, transport.get_remote_server_key(), expected, known_hosts)
        _authenticate(transport, target, login, pkey)
        return _write(transport, target, name, chunks, key, timeout)
    finally:
        transport.close()


def _connect(target: SftpTarget, timeout: float, allow_private: bool) -> socket.socket:
    """A socket to an address of the host checked by ``outbound`` (``RefusedHost`` for a
    private one unless allowed)."""
    try:
        return connect(target.host, target.port, timeout=timeout, allow_private=allow_private)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise DeliveryError(
            f"cannot connect to {target.host} port {target.port}: {reason}"
        ) from None


def _login_key(login: Login) -> paramiko.PKey | None:
    if login.password is not None or login.key_file is None:
        return None
    try:
        return paramiko.PKey.from_path(login.key_file)
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise DeliveryError(f"cannot read SFTP_KEY_FILE {login.key_file}: {exc}") from None


def _expected_keys(target: SftpTarget, known_hosts: KnownHosts) -> list[paramiko.PKey]:
    if target.host_key:
        kind, data = target.host_key.split()
        return [paramiko.PKey.from_type_string(kind, base64.b64decode(data))]
    return known_hosts.lookup(target.address)


def _check_server_key(
    target: SftpTarget,
    key: paramiko.PKey,
    expected: list[paramiko.PKey],
    known_hosts: KnownHosts,
) -> None:
    entry = f"{key.get_name()}%20{key.get_base64()}"  # as typed in a URL (no space)
    if expected:
        if any(key.asbytes() == known.asbytes() for known in expected):
            return
        where = "the destination's host_key" if target.host_key else str(known_hosts.path)
        raise DeliveryError(
            f"refused: the host key of {target.address} has CHANGED — it offered "
            f"{key.get_name()} {fingerprint(key)}, {where} says "
            f"{expected[0].get_name()} {fingerprint(expected[0])}; someone may be "
            "intercepting the connection. If the server's key was really replaced, set the "
            "destination's host_key to the new entry"
        )
    if not target.trust_first_use:
        raise DeliveryError(
            f"refused: the host key of {target.address} is unknown ({fingerprint(key)}); "
            f"check it and add host_key={entry} to the destination, or add "
            f"trust={TRUST_FIRST_USE} to trust the key it shows the first time"
        )
    known_hosts.remember(target.address, key)


def _authenticate(
    transport: paramiko.Transport,
    target: SftpTarget,
    login: Login,
    pkey: paramiko.PKey | None,
) -> None:
    who = f"{target.user}@{target.address}"
    try:
        if login.password is not None:
            transport.auth_password(target.user, login.password)
        elif pkey is not None:
            transport.auth_publickey(target.user, pkey)
        else:
            raise DeliveryError(
                f"no way to log in as {who}: give a password in the URL "
                "(sftp://user:password@host/folder/) or set SFTP_KEY_FILE"
            )
    except paramiko.AuthenticationException:
        how = "password" if login.password is not None else f"key {fingerprint(pkey)}"  # type: ignore[arg-type]
        raise DeliveryError(f"{who} refused the login ({how})") from None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise DeliveryError(f"login as {who} failed: {exc}") from None


def _write(
    transport: paramiko.Transport,
    target: SftpTarget,
    name: str,
    chunks: Iterable[bytes],
    key: str,
    timeout: float,
) -> str:
    folder = target.folder
    if folder.startswith("/~/"):
        folder = folder[3:] or "."
    final = posixpath.join(folder, name)
    # Named by the delivery key: a try whose worker died left this very name, removed below.
    temporary = posixpath.join(folder, f".{name}.{key}.part")
    try:
        client = paramiko.SFTPClient.from_transport(transport)
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise DeliveryError(f"{target.address} offers no SFTP: {exc}") from None
    if client is None:
        raise DeliveryError(f"{target.address} offers no SFTP")
    with client:
        client.get_channel().settimeout(timeout)
        try:
            with contextlib.suppress(FileNotFoundError):
                client.remove(temporary)
            with client.open(temporary, "wbx") as handle:
                handle.set_pipelined(True)
                for chunk in chunks:
                    handle.write(chunk)
            _rename_over(client, temporary, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                client.remove(temporary)
            raise DeliveryError(
                f"cannot write {final} on {target.address}: {_reason(exc)}"
            ) from None
    return final


def _rename_over(client: paramiko.SFTPClient, source: str, final: str) -> None:
    """Rename replacing ``final``: OpenSSH's posix-rename; else (older servers) remove the
    old file first — the one moment a reader may find no file, never half of one."""
    try:
        client.posix_rename(source, final)
        return
    except OSError:
        pass
    with contextlib.suppress(FileNotFoundError):
        client.remove(final)
    client.rename(source, final)


def _reason(exc: OSError) -> str:
    return exc.strerror or (str(exc.args[-1]) if exc.args else type(exc).__name__)
