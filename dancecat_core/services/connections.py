"""Connections: create, change, delete and list, with the password kept encrypted (the
Test button: ``probes``)."""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import select
from sqlalchemy.orm import Session

from dancecat_core.drivers import Driver
from dancecat_core.errors import ValidationError
from dancecat_core.models import Connection, Job, User, utcnow
from dancecat_core.services import access, naming, validation

if TYPE_CHECKING:  # only named in annotations: importing it would load every plugin module
    from dancecat_core.runtime import Runtime

UNSET: Any = object()


@attrs.frozen
class ConnectionInput:
    """A connection as submitted. ``password`` UNSET (or empty on update) keeps the old one."""

    name: str
    driver: str
    database: str
    host: str | None = None
    port: int | str | None = None
    user: str | None = None
    password: str | None = UNSET
    read_only: bool = True
    shared: bool = False
    options: dict[str, Any] = attrs.field(factory=dict)


_HOST_NAME = re.compile(r"[A-Za-z0-9_.-]{1,253}")
HOST_RULE = "host must be a host name, an IP address or a socket directory (/...)"


def _host(value: Any) -> str | None:
    """A host name, an IP address or a Unix socket directory; anything else is refused here
    rather than failing deep inside a driver's resolver (an over-long DNS label raises
    ``UnicodeError`` from ``getaddrinfo``, which no driver expects)."""
    host = validation.text(value, "host", max_length=255, required=False) or None
    if host is None or host.startswith("/"):
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


def checked(runtime: Runtime, actor: User | None, data: ConnectionInput) -> dict[str, Any]:
    """The input's values as the model's columns, each checked (the password apart)."""
    driver_name = validation.text(data.driver, "driver", max_length=50)
    if driver_name not in runtime.drivers:
        known = ", ".join(sorted(runtime.drivers))
        raise ValidationError(f"driver must be one of {known}", "driver")
    driver = runtime.drivers[driver_name]
    host = _host(data.host)
    if driver.needs_host and not host:
        raise ValidationError(f"host is required for {driver.label}", "host")
    if not isinstance(data.options, dict):
        raise ValidationError("options must be an object", "options")
    database = validation.text(data.database, "database", max_length=1024)
    values = {
        "name": validation.text(data.name, "name", max_length=100),
        "driver": driver_name,
        "database": database,
        "host": host,
        "port": validation.optional_int(data.port, "port", minimum=1, maximum=65535)
        or driver.default_port,
        "user_name": validation.text(data.user, "user", max_length=255, required=False) or None,
        "read_only": validation.boolean(data.read_only, "read_only"),
        "shared": validation.boolean(data.shared, "shared"),
        "options": data.options,
    }
    _check_local_file(runtime, actor, driver, database, values["read_only"])
    return values


def _check_local_file(
    runtime: Runtime, actor: User | None, driver: Driver, database: str, read_only: bool
) -> None:
    """A file on this machine: only what the driver may open (``SQLITE_ALLOWED_DIRS``, never
    DanceCat's own files), and written to only through a connection an admin saved."""
    if driver.needs_host:
        return
    if not read_only and actor is not None and not actor.is_admin:
        raise ValidationError(
            f"read_only: only an admin may save a read-write {driver.label} connection",
            "read_only",
        )
    driver.check_database(database, read_only=read_only, files=runtime.file_rules())


# Where a connection's password goes. Changing any of these with the password left empty
# would send the stored password to a server the editor chooses (and so let them read it):
# the password must be typed again instead.
TARGET_FIELDS = ("driver", "host", "port", "database", "user_name", "options")
PASSWORD_AGAIN = (
    "password: type the password again to change the driver, host, port, database, user "
    "or options (the stored one is only sent where it was saved for)"
)


def _password_given(password: Any) -> bool:
    return not (password is UNSET or password is None or password == "")


def stored_password_for(
    runtime: Runtime, connection: Connection, values: dict[str, Any], password: Any
) -> str | None:
    """The stored (encrypted) password to keep with ``values``: only for the same target.

    None when a new password is given, none is stored, or the new driver takes no host (a
    file: nothing to send it to, so it is dropped). Refused when the target changed and
    the password was not typed again."""
    if _password_given(password) or connection.password_encrypted is None:
        return None
    if all(getattr(connection, field) == values[field] for field in TARGET_FIELDS):
        return connection.password_encrypted
    if not runtime.drivers[values["driver"]].needs_host:
        return None
    raise ValidationError(PASSWORD_AGAIN, "password")


def set_password(runtime: Runtime, connection: Connection, password: Any) -> None:
    """Encrypt and keep a new password; UNSET, None or empty keeps the old one."""
    if not _password_given(password):
        return
    if not isinstance(password, str) or len(password) > 1024:
        raise ValidationError("password must be text of at most 1024 characters", "password")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("password must be valid Unicode text", "password") from None
    connection.password_encrypted = runtime.secret_box.encrypt(password)


def create(
    runtime: Runtime, session: Session, actor: User | None, data: ConnectionInput
) -> Connection:
    values = checked(runtime, actor, data)
    connection = Connection(owner_id=actor.id if actor else None, **values)
    naming.require_unique(session, Connection, connection.owner_id, values["name"])
    set_password(runtime, connection, data.password)
    session.add(connection)
    session.flush()
    return connection


def update(
    runtime: Runtime,
    session: Session,
    actor: User | None,
    connection_id: int,
    data: ConnectionInput,
) -> Connection:
    connection = access.require_changeable(
        actor, session.get(Connection, connection_id), "connection"
    )
    values = checked(runtime, actor, data)
    naming.require_unique(
        session, Connection, connection.owner_id, values["name"], current=connection
    )
    connection.password_encrypted = stored_password_for(runtime, connection, values, data.password)
    for key, value in values.items():
        setattr(connection, key, value)
    set_password(runtime, connection, data.password)
    connection.updated_at = utcnow()
    session.flush()
    return connection


def delete(session: Session, actor: User | None, connection_id: int) -> Connection:
    """Logical delete: jobs keep pointing at it and show "connection deleted"."""
    connection = access.require_changeable(
        actor, session.get(Connection, connection_id), "connection"
    )
    connection.deleted_at = utcnow()
    session.flush()
    return connection


def get(session: Session, actor: User | None, connection_id: int) -> Connection:
    return access.require_visible(actor, session.get(Connection, connection_id), "connection")


def get_by_name(session: Session, actor: User | None, name: str) -> Connection:
    """The connection ``actor`` may see with exactly this name; ``Conflict`` if several
    have it (two owners' connections, or a database from before names were unique)."""
    found = session.scalars(
        select(Connection)
        .where(
            Connection.name == name,
            Connection.deleted_at.is_(None),
            access.visible_filter(actor, Connection),
        )
        .order_by(Connection.id)
        .limit(10)
    ).all()
    return access.require_visible(actor, naming.only_one(found, name, "connection"), "connection")


def jobs_using(session: Session, actor: User | None, connection_id: int) -> list[Job]:
    """The live jobs ``actor`` may see that query this connection."""
    return list(
        session.scalars(
            select(Job)
            .where(
                Job.connection_id == connection_id,
                Job.deleted_at.is_(None),
                access.visible_filter(actor, Job),
            )
            .order_by(Job.id)
        )
    )


def list_visible(session: Session, actor: User | None) -> list[Connection]:
    return list(
        session.scalars(
            select(Connection)
            .where(Connection.deleted_at.is_(None), access.visible_filter(actor, Connection))
            .order_by(Connection.name, Connection.id)
        )
    )
