"""A database connection as submitted: where it is, who to sign in as, who may use it."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import attrs

from dancecat_core.errors import ValidationError
from dancecat_core.inputs.fields import Input, Kind, spec

_HOST_NAME = re.compile(r"[A-Za-z0-9_.-]{1,253}")
HOST_RULE = "host must be a host name, an IP address or a socket directory (/...)"


def host_rule(host: str) -> str:
    """A host name, an IP address or a Unix socket directory; anything else is refused here
    rather than failing deep inside a driver's resolver (an over-long DNS label raises
    ``UnicodeError`` from ``getaddrinfo``, which no driver expects)."""
    if host.startswith("/"):
        return host
    try:
        ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
        return host
    except ValueError:
        pass
    try:
        ascii_name = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValidationError(HOST_RULE, "host") from None
    if not _HOST_NAME.fullmatch(ascii_name):
        raise ValidationError(HOST_RULE, "host")
    return host


def registered_drivers(runtime: Any) -> list[tuple[str, str]]:
    """The drivers plugins registered, as ``(name, label)``."""
    return sorted((name, driver.label) for name, driver in runtime.drivers.items())


@attrs.frozen
class ConnectionInput(Input):
    """A connection. An unset or empty ``password`` keeps the stored one."""

    name: Any = spec("Name", Kind.TEXT, required=True, max_length=100, flag="name")
    driver: Any = spec(
        "Driver",
        Kind.CHOICE,
        required=True,
        choices=registered_drivers,
        widget="select",
        flag="--driver",
        help="One of the installed drivers.",
    )
    host: Any = spec(
        "Host",
        Kind.TEXT,
        nullable=True,
        max_length=255,
        check=host_rule,
        flag="--host",
        help="Not needed for SQLite.",
    )
    port: Any = spec(
        "Port",
        Kind.INTEGER,
        nullable=True,
        minimum=1,
        maximum=65535,
        flag="--port",
        help="Empty: the driver's default.",
    )
    database: Any = spec(
        "Database",
        Kind.TEXT,
        required=True,
        max_length=1024,
        flag="--database",
        help="Database name, or the file path for SQLite.",
    )
    user: Any = spec("User", Kind.TEXT, nullable=True, max_length=255, flag="--user")
    password: Any = spec(
        "Password",
        Kind.SECRET,
        nullable=True,
        max_length=1024,
        write_only=True,
        widget="password",
        strip=False,
        flag="--password-stdin",
        help=(
            "Never shown again. Leave empty to keep the saved password; changing the "
            "driver, host, port, database, user or options needs it again."
        ),
    )
    read_only: Any = spec(
        "Read-only",
        Kind.BOOLEAN,
        default=True,
        widget="checkbox",
        flag="--read-only",
        off_flag="--read-write",
        help="Refuse statements that change data.",
    )
    shared: Any = spec(
        "Shared",
        Kind.BOOLEAN,
        default=False,
        widget="checkbox",
        flag="--shared",
        help="Everyone on this DanceCat may use it.",
    )
    options: Any = spec(
        "Options (JSON)",
        Kind.OBJECT,
        default={},
        widget="json",
        flag="--options",
        help="Driver-specific options, as a JSON object; empty means none.",
    )
