"""An ``sftp://`` destination read: its user, host, port, folder, password and options.

Apart from the notifier (``sftp_destination``) so that the paramiko side
(``sftp_transfer``) can use it without an import cycle.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import quote, unquote, urlunsplit

import attrs

from dancecat_core.errors import ValidationError
from dancecat_plugins.destination_files import DEFAULT_FORMAT, FORMAT_NAME, split_url

SCHEME = "sftp"
DEFAULT_PORT = 22
TRUST_FIRST_USE = "first-use"
OPTIONS = ("host_key", "trust", "format")


@attrs.frozen
class SftpTarget:
    """A parsed SFTP destination. ``password`` is the only secret."""

    user: str
    host: str
    port: int
    folder: str
    password: str | None = attrs.field(default=None, repr=False)
    host_key: str | None = None
    trust_first_use: bool = False
    format: str = DEFAULT_FORMAT

    @property
    def address(self) -> str:
        """The host as known-hosts files name it: ``host`` on 22, else ``[host]:port``."""
        return self.host if self.port == DEFAULT_PORT else f"[{self.host}]:{self.port}"

    def shown(self) -> str:
        """The destination with its password masked."""
        userinfo = quote(self.user, safe="") + (":***" if self.password is not None else "")
        host = f"[{self.host}]" if ":" in self.host else self.host
        netloc = f"{userinfo}@{host}" + (f":{self.port}" if self.port != DEFAULT_PORT else "")
        query: list[str] = []
        if self.host_key:
            query.append("host_key=" + quote(self.host_key, safe="+/="))
        if self.trust_first_use:
            query.append(f"trust={TRUST_FIRST_USE}")
        if self.format != DEFAULT_FORMAT:
            query.append(f"format={self.format}")
        return urlunsplit((SCHEME, netloc, quote(self.folder), "&".join(query), ""))


def parse_target(url: str) -> SftpTarget:
    """Read an ``sftp://`` URL; ``ValidationError`` with one line saying what is wrong."""
    parts = split_url(url.strip(), SCHEME, "the password")
    port = parts.port or DEFAULT_PORT
    if not parts.hostname:
        raise ValidationError("an sftp:// URL needs a host: sftp://user@host/folder/")
    if not parts.username:
        raise ValidationError("an sftp:// URL needs a user: sftp://user@host/folder/")
    if parts.fragment:
        raise ValidationError("an sftp:// URL has no #fragment")
    folder = unquote(parts.path) or "/"
    if not folder.endswith("/"):
        raise ValidationError("an sftp:// URL names a folder: end its path with /")
    if any(part == ".." for part in folder.split("/")) or "\x00" in folder:
        raise ValidationError("an sftp:// folder may not contain '..'")
    options = _options(parts.query)
    host_key = options.get("host_key")
    if host_key is not None:
        host_key = _check_host_key(host_key)
    trust = options.get("trust")
    if trust not in (None, TRUST_FIRST_USE):
        raise ValidationError(f"trust={trust!r}: the only value is trust={TRUST_FIRST_USE}")
    fmt = options.get("format", DEFAULT_FORMAT)
    if not FORMAT_NAME.fullmatch(fmt):
        raise ValidationError(f"format={fmt!r} is not a format name")
    return SftpTarget(
        user=unquote(parts.username),
        host=parts.hostname,
        port=port,
        folder=folder,
        password=unquote(parts.password) if parts.password is not None else None,
        host_key=host_key,
        trust_first_use=trust == TRUST_FIRST_USE,
        format=fmt,
    )


def _options(query: str) -> dict[str, str]:
    """The query's options. ``+`` stays ``+`` (it is common in a key's base64); a space is
    typed as ``%20`` (a recipient entry ends at its first space: ``inputs.recipients``)."""
    options: dict[str, str] = {}
    for pair in filter(None, query.split("&")):
        key, _, value = pair.partition("=")
        key, value = unquote(key), unquote(value)
        if key not in OPTIONS:
            raise ValidationError(f"unknown sftp:// option {key!r} (known: {', '.join(OPTIONS)})")
        if key in options:
            raise ValidationError(f"the sftp:// option {key!r} is given twice")
        options[key] = value
    return options


def _check_host_key(entry: str) -> str:
    """``TYPE BASE64``, as in a known-hosts line or a ``.pub`` file (host names before the
    type and a comment after the key are dropped)."""
    fields = entry.split()
    start = next((i for i, f in enumerate(fields) if f.startswith(("ssh-", "ecdsa-"))), None)
    if start is None or len(fields) < start + 2:
        raise ValidationError("host_key is a known-hosts entry: 'ssh-ed25519 AAAA...'")
    kind, data = fields[start : start + 2]
    import paramiko  # here, not at load: every console command loads every plugin

    try:
        key = paramiko.PKey.from_type_string(kind, base64.b64decode(data, validate=True))
    except (binascii.Error, paramiko.SSHException, ValueError) as exc:
        raise ValidationError(f"host_key is not a valid {kind} key ({exc})") from None
    return f"{key.get_name()} {key.get_base64()}"
