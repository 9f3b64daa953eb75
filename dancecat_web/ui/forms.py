"""Reading HTML forms into the service layer's inputs, and errors back onto fields.

A form is re-rendered from what the user typed (never from the database) when it is
refused, so nothing they entered is lost; ``FormErrors`` maps a service's
``ValidationError.field`` to the input it belongs to.
"""

from __future__ import annotations

from typing import Any

import attrs
from webob.multidict import MultiDict

from dancecat_core.errors import ValidationError
from dancecat_core.services.connections import UNSET, ConnectionInput


@attrs.define
class FormErrors:
    """Field name -> message, plus messages that belong to no field."""

    fields: dict[str, str] = attrs.field(factory=dict)
    general: list[str] = attrs.field(factory=list)

    def add(self, error: ValidationError, aliases: dict[str, str] | None = None) -> None:
        field = (aliases or {}).get(error.field or "", error.field)
        if field:
            self.fields[field] = str(error)
        else:
            self.general.append(str(error))

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)

    def get(self, field: str) -> str | None:
        return self.fields.get(field)


def text(post: MultiDict, name: str) -> str:
    value = post.get(name, "")
    return value if isinstance(value, str) else ""


def checkbox(post: MultiDict, name: str) -> bool:
    return post.get(name) in ("on", "1", "true", "yes")


def connection_values(post: MultiDict) -> dict[str, Any]:
    """The connection form as typed; the password is never echoed back."""
    return {
        "name": text(post, "name"),
        "driver": text(post, "driver"),
        "host": text(post, "host"),
        "port": text(post, "port"),
        "database": text(post, "database"),
        "user": text(post, "user"),
        "read_only": checkbox(post, "read_only"),
        "shared": checkbox(post, "shared"),
    }


def connection_input(post: MultiDict) -> ConnectionInput:
    values = connection_values(post)
    password = text(post, "password")
    return ConnectionInput(
        name=values["name"],
        driver=values["driver"],
        database=values["database"],
        host=values["host"] or None,
        port=values["port"] or None,
        user=values["user"] or None,
        password=password if password else UNSET,
        read_only=values["read_only"],
        shared=values["shared"],
    )
