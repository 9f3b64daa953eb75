"""Connections: create, change, delete and list, with the password kept encrypted (the
Test button: ``probes``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dancecat_core.errors import ValidationError
from dancecat_core.inputs.connection import ConnectionInput
from dancecat_core.inputs.fields import UNSET, Problems, relabel
from dancecat_core.models import Connection, Job, User, utcnow
from dancecat_core.services import access, naming
from dancecat_core.services.keyset import Keyset

if TYPE_CHECKING:  # only named in annotations: importing them would load every plugin module
    from dancecat_core.drivers import Driver
    from dancecat_core.runtime import Runtime


def stored(connection: Connection) -> dict[str, Any]:
    """The connection's present values by input field (never the password)."""
    return {
        "name": connection.name,
        "driver": connection.driver,
        "host": connection.host,
        "port": connection.port,
        "database": connection.database,
        "user": connection.user_name,
        "read_only": bool(connection.read_only),
        "shared": bool(connection.shared),
        "options": connection.options,
    }


def checked(runtime: Runtime, actor: User | None, data: ConnectionInput) -> dict[str, Any]:
    """Every field checked at once; the refusals are raised together."""
    problems = Problems()
    values = data.cleaned(runtime, problems)
    driver = runtime.drivers.get(values.get("driver") or "")
    if (
        driver is not None
        and driver.needs_host
        and not values.get("host")
        and not problems.has("host")
    ):
        problems.add(ValidationError(f"Host is required for {driver.label}", "host"))
    if driver is not None and values.get("database") and not problems.has("read_only"):
        try:
            _check_local_file(runtime, actor, driver, values["database"], values["read_only"])
        except ValidationError as error:
            problems.add(relabel(error, ConnectionInput.field(error.field or "database")))
    problems.raise_any()
    assert driver is not None  # driver is a required choice of the registered ones
    values["port"] = values["port"] or driver.default_port
    values["user_name"] = values.pop("user") or None
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
    # Worded without "password:" in front: error texts pass the value masker, which would
    # take the words after it for a password.
    "to change the driver, host, port, database, user or options, type the password again "
    "(the stored one is only sent where it was saved for)"
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
    """An unset, ``None`` or empty password keeps the stored one."""
    if not _password_given(password):
        return
    connection.password_encrypted = runtime.secret_box.encrypt(password)


def create(
    runtime: Runtime, session: Session, actor: User | None, data: ConnectionInput
) -> Connection:
    values = checked(runtime, actor, data)
    password = values.pop("password")
    connection = Connection(owner_id=actor.id if actor else None, **values)
    naming.require_unique(session, Connection, connection.owner_id, values["name"])
    set_password(runtime, connection, password)
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
    values = checked(runtime, actor, data.merged(stored(connection)))
    password = values.pop("password")
    naming.require_unique(
        session, Connection, connection.owner_id, values["name"], current=connection
    )
    connection.password_encrypted = stored_password_for(runtime, connection, values, password)
    for key, value in values.items():
        setattr(connection, key, value)
    set_password(runtime, connection, password)
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
    connection = session.scalars(
        select(Connection)
        .where(
            Connection.name == name,
            Connection.deleted_at.is_(None),
            access.visible_filter(actor, Connection),
        )
        .order_by(Connection.id)
    ).first()
    return access.require_visible(actor, connection, "connection")


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


def list_visible(
    session: Session, actor: User | None, page: Keyset | None = None
) -> list[Connection]:
    """Connections ``actor`` may see: by name, or one ``page`` newest first (the API)."""
    query = select(Connection).where(
        Connection.deleted_at.is_(None), access.visible_filter(actor, Connection)
    )
    if page is not None:
        return list(session.scalars(page.apply(query, Connection.id)))
    return list(session.scalars(query.order_by(Connection.name, Connection.id)))
