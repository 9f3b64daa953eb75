"""HTML forms drawn from, and read back into, the input declarations.

Every form iterates its input class's fields (``dancecat_core.inputs``), so a field the
API accepts cannot be missing from its form; reading a post only gives the fields that
were in it, so a field a form does not show keeps its stored value. A refused form is
re-rendered from what the user typed (never from the database), with every refused field's
message, by its label, next to it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from webob.multidict import MultiDict

from dancecat_core import parameters
from dancecat_core.errors import ValidationError
from dancecat_core.inputs.fields import LIST_KINDS, Input, InputField, Kind

START_INPUT_FORMAT = "%Y-%m-%dT%H:%M"


@attrs.define
class FormErrors:
    """Input id -> message, plus messages that belong to no field."""

    fields: dict[str, str] = attrs.field(factory=dict)
    general: list[str] = attrs.field(factory=list)

    def add(self, error: ValidationError, rename: Callable[[str], str] | None = None) -> None:
        """Every refusal ``error`` carries, each on its input (``rename``: field -> id)."""
        for problem in getattr(error, "problems", [error]):
            name = problem.field and (rename(problem.field) if rename else problem.field)
            if name:
                self.fields.setdefault(name, str(problem))
            else:
                self.general.append(str(problem))

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)

    def get(self, field: str) -> str | None:
        return self.fields.get(field)


def text(post: MultiDict, name: str) -> str:
    value = post.get(name, "")
    return value if isinstance(value, str) else ""


def checkbox(post: MultiDict, name: str) -> bool:
    """A plain checkbox (one not drawn from a declaration): ticked or not."""
    return post.get(name) in ("on", "1", "true", "yes")


def posted(input_class: type[Input], post: MultiDict, prefix: str = "") -> dict[str, Any]:
    """The fields of ``input_class`` present in ``post`` (input names ``prefix + name``),
    as typed. A checkbox is present through the hidden input drawn before it; a list
    (recipients) through its hidden empty entry; an empty password means "keep"."""
    values: dict[str, Any] = {}
    for field in input_class.fields():
        key = prefix + field.name
        if key not in post:
            continue
        entries = [value for value in post.getall(key) if isinstance(value, str)]
        if field.widget == "checkbox":
            values[field.name] = "on" in entries
        elif field.kind in LIST_KINDS:
            values[field.name] = [value.strip() for value in entries if value.strip()]
        elif field.kind is Kind.SECRET and not text(post, key):
            continue
        else:
            values[field.name] = entries[-1] if entries else ""
    return values


def shown(field: InputField, value: Any) -> Any:
    """A stored or default value as its form input shows it."""
    if value is None:
        return ""
    if field.kind is Kind.OBJECT:
        return json.dumps(value, indent=2, sort_keys=True) if value else ""
    if field.kind in LIST_KINDS:
        return list(value)
    if isinstance(value, str) and field.kind in (Kind.PARAMETERS, Kind.VALUES):
        return value  # as posted (a refused form shows what was typed)
    if field.kind is Kind.PARAMETERS:
        return "\n".join(
            f"{p.name}:{p.type_text}"
            + ("" if p.default is None else f"={parameters.as_text(p.default)}")
            for p in parameters.declare(value)
        )
    if field.kind is Kind.VALUES:
        return "\n".join(f"{name}={parameters.as_text(v)}" for name, v in value.items())
    if isinstance(value, dt.datetime):
        return value.strftime(START_INPUT_FORMAT)
    return value


def form_values(
    input_class: type[Input], stored: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Every field's input value: the stored one, else the field's default."""
    return {
        field.name: shown(field, (stored or {}).get(field.name, field.default))
        for field in input_class.fields()
        if not field.write_only
    }
