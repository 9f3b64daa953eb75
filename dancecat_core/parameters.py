"""Query parameters: what a job declares, how a value is read, and what a driver binds.

A job's SQL holds ``{{ name }}`` placeholders (``placeholders``); each is a declared
parameter (a name, a type, maybe a default) or a built-in date of the run (``run_dates``).
Values arrive as text (a form, the console) or JSON (the API) and are read into the type's
Python value here, once, with one line naming the parameter when they do not fit: nothing
reaches a database before every value has its type. ``bind`` then turns the job's text, its
declarations and the values into a ``BoundQuery``: the text cut at each placeholder and the
typed values that go between, which the driver binds as query parameters (its own markers,
its own quoting), never as DanceCat-made SQL text.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from dancecat_core import placeholders
from dancecat_core.drivers import BoundQuery
from dancecat_core.errors import ValidationError
from dancecat_core.run_dates import BUILTIN_TYPES, Occasion, builtin_values

TYPES = ("text", "integer", "number", "date", "datetime", "boolean")
CHOICE = "choice"
MAX_PARAMETERS = 50
MAX_TEXT = 10_000
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
# Numbers are decimals, exact on every database; beyond these they fit none of them.
MAX_DIGITS = 1000
MAX_EXPONENT = 300
_NAME = re.compile(placeholders.NAME)
_TRUE = {"true", "t", "yes", "y", "on", "1"}
_FALSE = {"false", "f", "no", "n", "off", "0"}


@attrs.frozen
class Parameter:
    """A declared parameter. ``choices`` is set (and ``type`` is ``choice``) for a list of
    allowed values; ``default`` is the typed default, or ``None`` for none."""

    name: str
    type: str
    choices: tuple[str, ...] = ()
    default: Any = None

    @property
    def type_text(self) -> str:
        """The type as the console writes it: ``date``, or ``EU|US`` for a list."""
        return "|".join(self.choices) if self.type == CHOICE else self.type

    def to_json(self) -> dict[str, Any]:
        kind: Any = list(self.choices) if self.type == CHOICE else self.type
        return {"name": self.name, "type": kind, "default": to_json(self.default)}

    def read(self, raw: Any) -> Any:
        """``raw`` (text or a JSON value) as this parameter's value, or why it does not fit."""
        return read_value(self.name, self.type, raw, self.choices)


def read_value(name: str, kind: str, raw: Any, choices: Sequence[str] = ()) -> Any:
    """``raw`` as a value of ``kind`` for the parameter ``name``; ``ValidationError``
    (one line naming the parameter) when it is not one."""
    try:
        return _READERS[kind](raw, choices)
    except (ValueError, TypeError, ArithmeticError) as error:
        shown = raw if not isinstance(raw, str) or len(raw) <= 40 else raw[:40] + "…"
        raise ValidationError(
            f"parameter {name}: {shown!r} is not {_a(kind, choices)}"
            + (f" ({error})" if str(error) and isinstance(error, ValueError) else ""),
            "parameters",
        ) from None


def _a(kind: str, choices: Sequence[str]) -> str:
    if kind == CHOICE:
        return "one of " + ", ".join(choices)
    return {
        "text": "text",
        "integer": "a whole number",
        "number": "a number",
        "date": "a date (YYYY-MM-DD)",
        "datetime": "a date and time (YYYY-MM-DD HH:MM[:SS][+HH:MM])",
        "boolean": "true or false",
    }[kind]


def _text(raw: Any, choices: Sequence[str]) -> str:
    if not isinstance(raw, str):
        raise TypeError
    if len(raw) > MAX_TEXT:
        raise ValueError(f"longer than {MAX_TEXT} characters")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid Unicode text") from None
    return raw


def _integer(raw: Any, choices: Sequence[str]) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise TypeError
    if isinstance(raw, str):
        text = raw.strip()
        if not re.fullmatch(r"[+-]?[0-9]{1,20}", text):
            raise TypeError
        raw = int(text)
    if not INT_MIN <= raw <= INT_MAX:
        raise ValueError("outside the 64-bit range")
    return raw


def _number(raw: Any, choices: Sequence[str]) -> decimal.Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise TypeError
    text = str(raw).strip()
    if len(text) > MAX_DIGITS or not re.fullmatch(
        r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", text
    ):
        raise TypeError
    value = decimal.Decimal(text)
    if value and abs(value.adjusted()) > MAX_EXPONENT:
        raise ValueError(f"beyond 1e{MAX_EXPONENT}")
    return value


def _date(raw: Any, choices: Sequence[str]) -> dt.date:
    if isinstance(raw, dt.datetime) or not isinstance(raw, str | dt.date):
        raise TypeError
    if isinstance(raw, dt.date):
        return raw
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", raw.strip()):
        raise TypeError
    return dt.date.fromisoformat(raw.strip())


def _datetime(raw: Any, choices: Sequence[str]) -> dt.datetime:
    if isinstance(raw, dt.datetime):
        return raw
    if not isinstance(raw, str):
        raise TypeError
    text = raw.strip()
    if not re.fullmatch(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
        r"(Z|[+-][0-9]{2}:[0-9]{2})?",
        text,
    ):
        raise TypeError
    return dt.datetime.fromisoformat(text)


def _boolean(raw: Any, choices: Sequence[str]) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    raise TypeError


def _choice(raw: Any, choices: Sequence[str]) -> str:
    if isinstance(raw, str) and raw in choices:
        return raw
    raise TypeError


_READERS = {
    "text": _text,
    "integer": _integer,
    "number": _number,
    "date": _date,
    "datetime": _datetime,
    "boolean": _boolean,
    CHOICE: _choice,
}


def to_json(value: Any) -> Any:
    """A typed value as JSON keeps it (and forms show it): dates as ISO text, numbers
    as exact text; ``read_value`` reads each back to the same value."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


def as_text(value: Any) -> str:
    """A value as a person reads it (the runs table, mails, the console)."""
    shown = to_json(value)
    if isinstance(shown, bool):
        return "true" if shown else "false"
    return "" if shown is None else str(shown)


# -- declarations -------------------------------------------------------------------------


def parse_spec(text: str) -> dict[str, Any]:
    """The console's ``NAME:TYPE[=DEFAULT]`` (TYPE may be ``a|b|c``) as an API object."""
    name, colon, rest = text.partition(":")
    if not colon:
        raise ValidationError(
            f"Parameters: {text!r} must be NAME:TYPE[=DEFAULT], e.g. region:text=EU",
            "parameters",
        )
    kind, equals, default = rest.partition("=")
    kind_value: Any = kind.strip().split("|") if "|" in kind else kind.strip()
    return {"name": name.strip(), "type": kind_value, "default": default if equals else None}


def declare(raw: Any) -> tuple[Parameter, ...]:
    """The declarations a job gives (API objects, console ``NAME:TYPE[=DEFAULT]`` texts,
    or the form's one per line), checked: names unique and not built in, types known,
    defaults of their type."""
    if raw is None or raw == "":
        return ()
    if isinstance(raw, str):
        raw = [line for line in raw.splitlines() if line.strip()]
    if not isinstance(raw, list | tuple):
        raise ValidationError("Parameters must be a list of {name, type, default}", "parameters")
    if len(raw) > MAX_PARAMETERS:
        raise ValidationError(f"Parameters: at most {MAX_PARAMETERS}", "parameters")
    declared: list[Parameter] = []
    for item in raw:
        if isinstance(item, Parameter):
            declared.append(item)
            continue
        spec_ = parse_spec(item) if isinstance(item, str) else item
        if not isinstance(spec_, Mapping) or set(spec_) - {"name", "type", "default"}:
            raise ValidationError(
                "Parameters: each must be an object with name, type and default", "parameters"
            )
        declared.append(_one(spec_.get("name"), spec_.get("type"), spec_.get("default")))
    seen: set[str] = set()
    for parameter in declared:
        if parameter.name in seen:
            raise ValidationError(f"Parameters: {parameter.name} is declared twice", "parameters")
        seen.add(parameter.name)
    return tuple(declared)


def _one(name: Any, kind: Any, default: Any) -> Parameter:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError(
            f"Parameters: {name!r} is not a name (letters, digits and _, not starting "
            "with a digit, at most 63)",
            "parameters",
        )
    if name in BUILTIN_TYPES:
        raise ValidationError(
            f"Parameters: {name} is a built-in date and cannot be declared", "parameters"
        )
    choices: tuple[str, ...] = ()
    if isinstance(kind, list | tuple):
        if not all(isinstance(choice, str) for choice in kind):
            raise ValidationError(
                f"Parameters: {name}'s allowed values must be texts", "parameters"
            )
        choices = tuple(kind)
        if not choices or len(set(choices)) != len(choices) or any(not c for c in choices):
            raise ValidationError(
                f"Parameters: {name}'s allowed values must be distinct and not empty",
                "parameters",
            )
        kind = CHOICE
    if kind not in TYPES and kind != CHOICE:
        raise ValidationError(
            f"Parameters: {name}'s type {kind!r} is not one of {', '.join(TYPES)} "
            "or a list of allowed values",
            "parameters",
        )
    value = None if default is None else read_value(name, kind, default, choices)
    return Parameter(name, kind, choices, value)


def load(stored: str | None) -> tuple[Parameter, ...]:
    """A job's declarations as the app database keeps them (JSON; ``None``: none)."""
    return declare(json.loads(stored)) if stored else ()


def dump(declared: Iterable[Parameter]) -> str | None:
    items = [parameter.to_json() for parameter in declared]
    return json.dumps(items, ensure_ascii=False) if items else None


def check_query(sql: str, declared: Sequence[Parameter], dialect: str) -> None:
    """Refuse, naming it, a placeholder that is neither declared nor built in."""
    known = {parameter.name for parameter in declared} | set(BUILTIN_TYPES)
    for name in placeholders.names(sql, dialect):
        if name not in known:
            raise ValidationError(
                f"Query: {{{{ {name} }}}} is neither a declared parameter nor a built-in "
                "date; declare it under Parameters",
                "query",
            )


# -- values ------------------------------------------------------------------------------


def read_values(declared: Sequence[Parameter], given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The values given for a run, each read by its declared type (a built-in date may be
    given too: a manual run for an earlier period). An unknown name is refused."""
    types = {p.name: (p.type, p.choices) for p in declared}
    types.update({name: (kind, ()) for name, kind in BUILTIN_TYPES.items()})
    values: dict[str, Any] = {}
    for name, raw in (given or {}).items():
        if name not in types:
            raise ValidationError(f"parameter {name} is not declared by this job", "parameters")
        kind, choices = types[name]
        values[name] = read_value(name, kind, raw, choices)
    return values


def values_json(values: Mapping[str, Any]) -> str | None:
    """Values as the app database keeps them (``None``: none)."""
    if not values:
        return None
    return json.dumps({k: to_json(v) for k, v in values.items()}, ensure_ascii=False)


def load_values(stored: str | None) -> dict[str, Any]:
    """Values as a tracker or a schedule keeps them (JSON text, each read by its type
    again when used)."""
    return dict(json.loads(stored)) if stored else {}


def summary(stored: str | None) -> str:
    """A run's recorded values in one line, ``region=EU, due_date=2026-12-02``."""
    return ", ".join(f"{name}={as_text(value)}" for name, value in load_values(stored).items())


def parse_assignments(pairs: Iterable[str]) -> dict[str, str]:
    """The console's repeated ``KEY=VALUE`` as a mapping (a value may hold ``=``)."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name.strip():
            raise ValidationError(f"--param {pair!r} must be KEY=VALUE", "parameters")
        values[name.strip()] = value
    return values


def bind(
    sql: str,
    declared: Sequence[Parameter],
    given: Mapping[str, Any],
    occasion: Occasion,
    dialect: str,
) -> tuple[BoundQuery, dict[str, Any]]:
    """The one step from a job to what its driver executes: ``sql`` cut at its
    placeholders, each filled with its typed value (given, else the declared default,
    else the built-in date of ``occasion``), and the values used, by name, as the tracker
    records them. A missing or ill-typed value is refused here, naming the parameter."""
    parts, used = placeholders.cut(sql, dialect)
    if not used:
        return BoundQuery((sql,)), {}
    values = read_values(declared, {k: v for k, v in given.items() if k in set(used)})
    by_name = {parameter.name: parameter for parameter in declared}
    builtins: dict[str, Any] | None = None
    for name in used:
        if name in values:
            continue
        if name in by_name:
            if by_name[name].default is None:
                raise ValidationError(f"parameter {name} needs a value", "parameters")
            values[name] = by_name[name].default
        elif name in BUILTIN_TYPES:
            builtins = builtins if builtins is not None else builtin_values(occasion)
            values[name] = builtins[name]
        else:
            raise ValidationError(
                f"parameter {name} is neither declared nor a built-in date", "parameters"
            )
    bound = BoundQuery(parts, tuple(values[name] for name in used), used)
    return bound, {name: values[name] for name in dict.fromkeys(used)}


@attrs.frozen
class RunParameters:
    """What fills a run's placeholders: the job's declarations, the values the run was
    given (JSON, as the tracker keeps them; a scheduled run: its schedule's fixed values)
    and the occasion its built-in dates come from."""

    declared_json: str | None
    values_json: str | None
    occasion: Occasion

    def bind(self, sql: str, driver: str) -> tuple[BoundQuery, dict[str, Any]]:
        """What the driver executes, and every value used (``bind``)."""
        return bind(
            sql, load(self.declared_json), load_values(self.values_json), self.occasion, driver
        )
