"""Reading JSON request bodies strictly: a JSON object, known fields, the declared types.

This is only the shape of the input (what OpenAPI describes); whether a value is
acceptable (lengths, ranges, a visible connection) is the service layer's call. Malformed
JSON is a 400; a well-formed body of the wrong shape is a 422 naming the field.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from pyramid.request import Request

from dancecat_core.errors import ValidationError
from dancecat_core.inputs.fields import LIST_KINDS, Input
from dancecat_web.errors import MalformedBody

MAX_DEPTH = 32


@attrs.frozen
class Field:
    """One body field: its JSON type (``string``, ``integer``, ``boolean``, ``object``,
    ``array``), whether ``null`` is allowed, and for arrays the type of the items. An
    array of objects may name the fields each item needs, ``item_required``, unless the
    item has an ``id``: an existing object, whose stored values fill the fields left out."""

    kind: str
    nullable: bool = False
    items: str | Mapping[str, Field] | None = None
    item_required: tuple[str, ...] = ()


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def input_fields(input_class: type[Input], only: tuple[str, ...] | None = None) -> dict[str, Field]:
    """The JSON shape of an input class's fields (or of those named in ``only``)."""
    return {
        field.name: Field(
            field.json_type,
            nullable=field.nullable,
            items="string" if field.kind in LIST_KINDS else None,
        )
        for field in input_class.fields()
        if only is None or field.name in only
    }


def required_fields(input_class: type[Input]) -> tuple[str, ...]:
    return tuple(field.name for field in input_class.fields() if field.required)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth(value: Any, limit: int) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def json_body(request: Request) -> Any:
    """The body parsed as strict JSON (no NaN, UTF-8), or ``MalformedBody``."""
    raw = request.body
    if not raw.strip():
        raise MalformedBody("the request needs a JSON body")
    try:
        text = raw.decode("utf-8")
        value = json.loads(text, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        message = exc.msg if isinstance(exc, json.JSONDecodeError) else "not valid JSON"
        raise MalformedBody(f"the body is not valid JSON: {message}") from None
    if _depth(value, MAX_DEPTH) > MAX_DEPTH:
        raise MalformedBody(f"the body nests deeper than {MAX_DEPTH} levels")
    return value


def _check(value: Any, field: Field, name: str) -> Any:
    if value is None:
        if field.nullable:
            return None
        raise ValidationError(f"{name} must not be null", name)
    types = _TYPES[field.kind]
    if not isinstance(value, types) or (field.kind == "integer" and isinstance(value, bool)):
        article = "an" if field.kind[0] in "aeiou" else "a"
        raise ValidationError(f"{name} must be {article} {field.kind}", name)
    if field.kind == "array" and field.items is not None:
        if isinstance(field.items, str):
            item_field = Field(field.items)
            return [_check(item, item_field, f"{name}[{i}]") for i, item in enumerate(value)]
        return [
            check_object(
                item,
                field.items,
                required=() if _names_existing(item) else field.item_required,
                name=f"{name}[{i}]",
            )
            for i, item in enumerate(value)
        ]
    return value


def _names_existing(item: Any) -> bool:
    return isinstance(item, dict) and item.get("id") is not None


def check_object(
    value: Any,
    fields: Mapping[str, Field],
    *,
    required: tuple[str, ...] | frozenset[str] = (),
    name: str = "body",
) -> dict[str, Any]:
    """``value`` as a dict of declared fields with the declared types, or ``ValidationError``."""
    if not isinstance(value, dict):
        raise ValidationError(f"{name} must be a JSON object", None if name == "body" else name)
    prefix = "" if name == "body" else f"{name}."
    for key in value:
        if key not in fields:
            shown = f"{prefix}{key}" if key.strip() else f"{prefix}{key!r}"
            raise ValidationError(f"unknown field {shown}", shown)
    for key in required:
        if key not in value:
            raise ValidationError(f"{prefix}{key} is required", f"{prefix}{key}")
    return {key: _check(item, fields[key], f"{prefix}{key}") for key, item in value.items()}


def parse(
    request: Request,
    fields: Mapping[str, Field],
    *,
    required: tuple[str, ...] = (),
    optional_body: bool = False,
) -> dict[str, Any]:
    """The request's JSON object body, checked against ``fields``."""
    if optional_body and not request.body.strip():
        return {}
    return check_object(json_body(request), fields, required=required)


def query_int(
    request: Request, name: str, *, default: int | None, minimum: int, maximum: int
) -> int | None:
    """A whole-number query parameter within bounds, or ``ValidationError``."""
    raw = request.GET.get(name)
    if raw is None:
        return default
    try:
        number = int(raw) if raw.strip().lstrip("-").isdigit() else None
    except ValueError:
        number = None
    if number is None:
        raise ValidationError(f"{name} must be a whole number", name)
    if not minimum <= number <= maximum:
        raise ValidationError(f"{name} must be between {minimum} and {maximum}", name)
    return number


def query_choice(request: Request, name: str, choices: Sequence[str]) -> str | None:
    """A query parameter that must be one of ``choices`` (None when left out)."""
    raw = request.GET.get(name)
    if raw is not None and raw not in choices:
        raise ValidationError(f"{name} must be one of {', '.join(choices)}", name)
    return raw


def query_timestamp(request: Request, name: str) -> dt.datetime | None:
    """An ISO 8601 date-time query parameter; one without an offset is UTC."""
    raw = request.GET.get(name)
    if raw is None:
        return None
    try:
        value = dt.datetime.fromisoformat(raw)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise ValidationError(
            f"{name} must be an ISO 8601 date-time such as 2024-05-01T12:00:00Z", name
        ) from None
