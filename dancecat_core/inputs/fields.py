"""What one input field is, once: its name, label, type, limits, choices and help.

An input class (``JobInput``, ``ConnectionInput``...) is an attrs class whose attributes
are declared with ``spec(...)``; the API body, the OpenAPI schema, the HTML form and the
console's flags are all derived from those declarations, so no channel can forget a field
or state a limit differently. Every attribute defaults to ``UNSET``: a field nobody gave
keeps its stored value on an update and takes its default on a create.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Self

import attrs

from dancecat_core import parameters
from dancecat_core.errors import ValidationError
from dancecat_core.inputs.recipients import recipient_list
from dancecat_core.services import validation


class _Unset:
    """The value of a field nobody gave (not the same as an empty one)."""

    _instance: ClassVar[_Unset | None] = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()


class Kind(enum.StrEnum):
    """How a field's value is read and what JSON type carries it."""

    TEXT = "text"
    SECRET = "secret"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    CHOICE = "choice"
    EMAILS = "emails"
    RECIPIENTS = "recipients"  # emails, each with its delivery rule (``inputs.recipients``)
    OBJECT = "object"
    DATETIME = "datetime"
    PARAMETERS = "parameters"  # declarations: [{name, type, default}] (``parameters``)
    VALUES = "values"  # parameter values by name: {name: value}


JSON_TYPES = {
    Kind.TEXT: "string",
    Kind.SECRET: "string",
    Kind.INTEGER: "integer",
    Kind.BOOLEAN: "boolean",
    Kind.CHOICE: "string",
    Kind.EMAILS: "array",
    Kind.RECIPIENTS: "array",
    Kind.OBJECT: "object",
    Kind.DATETIME: "string",
    Kind.PARAMETERS: "array",
    Kind.VALUES: "object",
}

# Kinds whose value is a list of texts (a form draws one input per entry).
LIST_KINDS = frozenset({Kind.EMAILS, Kind.RECIPIENTS})


@attrs.frozen
class LoadedChoices:
    """Choices from a registry the process loads without a runtime (schedule types): unlike
    a function of the runtime, the console's parser can list them as its choices."""

    pairs: Callable[[], Sequence[tuple[str, str]]]


Choices = Sequence[tuple[str, str]] | Callable[[Any], Sequence[tuple[str, str]]] | LoadedChoices


@attrs.frozen
class InputField:
    """One field. ``choices`` is ``(value, label)`` pairs, a function of the runtime
    returning them (a plugin registry's list) or ``LoadedChoices``; ``check`` is an extra
    rule on the cleaned value that raises ``ValidationError``; ``widget`` tells the HTML
    form how to draw it.

    The console's options (``inputs.console``): ``flag`` is the field's (``""``: none; no
    dashes: positional when creating); ``off_flag`` turns a boolean off (default
    ``--no-<flag>``) or, on an edit, empties any other field; ``file_flag`` reads a text
    field from a file instead. A secret's ``flag`` reads it from standard input, never
    from the command line (which other users of the machine can see)."""

    name: str
    label: str
    kind: Kind
    required: bool = False
    nullable: bool = False
    default: Any = None
    max_length: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    choices: Choices | None = None
    help: str = ""
    placeholder: str = ""
    pattern: str | None = None
    widget: str = "input"
    flag: str = ""
    off_flag: str = ""
    file_flag: str = ""
    check: Callable[[Any], Any] | None = None
    write_only: bool = False
    strip: bool = True

    def options(self, runtime: Any = None) -> list[tuple[str, str]]:
        """The allowed ``(value, label)`` pairs (needs ``runtime`` for a registry's)."""
        if self.choices is None:
            return []
        if isinstance(self.choices, LoadedChoices):
            return list(self.choices.pairs())
        if callable(self.choices):
            return list(self.choices(runtime))
        return list(self.choices)

    @property
    def json_type(self) -> str:
        return JSON_TYPES[self.kind]

    def clean(self, raw: Any, runtime: Any = None) -> Any:
        """The value this field stores for ``raw``, or ``ValidationError`` (by label)."""
        empty = raw is None or (isinstance(raw, str) and not raw.strip() and self.strip)
        if empty and self.kind not in (
            Kind.BOOLEAN,
            Kind.OBJECT,
            Kind.PARAMETERS,
            Kind.VALUES,
            *LIST_KINDS,
        ):
            if self.required:
                raise ValidationError(f"{self.label} is required", self.name)
            return self.default
        value = self._convert(raw, runtime)
        if self.check is not None and value is not None:
            try:
                value = self.check(value)
            except ValidationError as error:
                raise relabel(error, self) from None
        return value

    def _convert(self, raw: Any, runtime: Any) -> Any:
        name, label = self.name, self.label
        if self.kind is Kind.TEXT:
            return validation.text(
                raw, name, max_length=self.max_length or 10**9, required=False, label=label
            )
        if self.kind is Kind.SECRET:
            return validation.secret(raw, name, max_length=self.max_length or 10**9, label=label)
        if self.kind is Kind.INTEGER:
            return validation.optional_int(
                raw,
                name,
                minimum=self.minimum if self.minimum is not None else -(2**62),
                maximum=self.maximum if self.maximum is not None else 2**62,
                label=label,
            )
        if self.kind is Kind.BOOLEAN:
            if raw is None:
                return bool(self.default)
            return validation.boolean(raw, name, label=label)
        if self.kind is Kind.CHOICE:
            return self._choice(raw, runtime)
        if self.kind is Kind.EMAILS:
            return validation.email_list(raw, name, label=label)
        if self.kind is Kind.RECIPIENTS:
            return recipient_list(raw, name, label=label, runtime=runtime)
        if self.kind is Kind.DATETIME:
            return raw  # its ``check`` parses it
        if self.kind is Kind.PARAMETERS:
            return parameters.declare(raw)
        if self.kind is Kind.VALUES:
            return self._values(raw)
        return self._object(raw)

    def _values(self, raw: Any) -> dict[str, Any]:
        """Values by name: a JSON object (the API), ``KEY=VALUE`` texts (the console's
        repeated flag) or lines of them (a form). Each is read by its type where the
        job's declarations are known (``parameters.read_values``)."""
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return {}
        if isinstance(raw, str):
            raw = [line for line in raw.splitlines() if line.strip()]
        if isinstance(raw, list | tuple):
            raw = parameters.parse_assignments(raw)
        if not isinstance(raw, dict):
            raise ValidationError(f"{self.label} must be an object of name: value", self.name)
        for name, value in raw.items():
            if isinstance(value, dict | list) or value is None:
                raise ValidationError(
                    f"{self.label}: {name} must be text, a number or true/false", self.name
                )
        return dict(raw)

    def _choice(self, raw: Any, runtime: Any) -> str:
        if not isinstance(raw, str):
            raise ValidationError(f"{self.label} must be text", self.name)
        values = [value for value, _ in self.options(runtime)]
        wanted = raw.strip().lower()
        for value in values:
            if value.lower() == wanted:
                return value
        raise ValidationError(f"{self.label} must be one of {', '.join(values)}", self.name)

    def _object(self, raw: Any) -> dict[str, Any]:
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return {}
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                raise ValidationError(f"{self.label} must be a JSON object", self.name) from None
        if not isinstance(raw, dict):
            raise ValidationError(f"{self.label} must be a JSON object", self.name)
        try:
            json.dumps(raw, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates survive JSON escaping, then break whoever reads them back.
            raise ValidationError(f"{self.label} must be valid Unicode text", self.name) from None
        return raw


def relabel(error: ValidationError, field: InputField) -> ValidationError:
    """``error`` with the field's internal name at its start replaced by its label."""
    message = str(error)
    for prefix, joiner in ((f"{field.name}: ", ": "), (f"{field.name} ", " ")):
        if message.startswith(prefix):
            message = field.label + joiner + message.removeprefix(prefix)
            break
    return ValidationError(message, field.name)


class InvalidInput(ValidationError):
    """Several fields refused at once. ``field`` and the message are the first one's;
    ``problems`` lists them all (the API answers them as ``details.errors``)."""

    def __init__(self, problems: Sequence[ValidationError]):
        first = problems[0]
        super().__init__("; ".join(str(problem) for problem in problems), first.field)
        self.problems = list(problems)
        self.details = {
            "errors": [{"field": problem.field, "message": str(problem)} for problem in problems]
        }


class Problems:
    """Collects every refusal of one input, then raises them together."""

    def __init__(self) -> None:
        self.found: list[ValidationError] = []

    def add(self, error: ValidationError) -> None:
        if isinstance(error, InvalidInput):
            self.found.extend(error.problems)
        else:
            self.found.append(error)

    def has(self, name: str) -> bool:
        return any(problem.field == name for problem in self.found)

    def raise_any(self) -> None:
        if len(self.found) == 1:
            raise self.found[0]
        if self.found:
            raise InvalidInput(self.found)


def spec(label: str, kind: Kind, **options: Any) -> Any:
    """Declare an input class attribute: ``name: str = spec("Name", Kind.TEXT, ...)``."""
    return attrs.field(default=UNSET, metadata={"input": (label, kind, options)})


class Input:
    """Base of the input classes: the field list, cleaning, and partial-update merging."""

    @classmethod
    def fields(cls) -> tuple[InputField, ...]:
        return tuple(
            InputField(attribute.name, label, kind, **options)
            for attribute in attrs.fields(cls)  # type: ignore[arg-type]
            if (declared := attribute.metadata.get("input")) is not None
            for label, kind, options in [declared]
        )

    @classmethod
    def field(cls, name: str) -> InputField:
        for field in cls.fields():
            if field.name == name:
                return field
        raise KeyError(name)

    @classmethod
    def from_values(cls, values: Mapping[str, Any], *, fill_defaults: bool = False) -> Self:
        """An input from a mapping of field name -> value; unknown keys are ignored.
        ``fill_defaults`` gives every missing field its default (a full replace)."""
        given = {}
        for field in cls.fields():
            if field.name in values:
                given[field.name] = values[field.name]
            elif fill_defaults:
                given[field.name] = field.default
        return cls(**given)

    def given(self) -> dict[str, Any]:
        """The fields that were given (not ``UNSET``), by name."""
        return {
            field.name: value
            for field in self.fields()
            if (value := getattr(self, field.name)) is not UNSET
        }

    def merged(self, current: Mapping[str, Any]) -> Self:
        """This input with every field it does not give taken from ``current``."""
        return attrs.evolve(  # type: ignore[misc]
            self,
            **{
                name: value
                for name, value in current.items()
                if name in attrs.fields_dict(type(self)) and getattr(self, name) is UNSET
            },
        )

    def cleaned(
        self,
        runtime: Any = None,
        problems: Problems | None = None,
        *,
        only: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """Every field (or those named in ``only``) cleaned, ``UNSET`` ones as their
        default; refusals go to ``problems`` when given, else are raised together."""
        collect = problems if problems is not None else Problems()
        wanted = None if only is None else set(only)
        values: dict[str, Any] = {}
        for field in self.fields():
            if wanted is not None and field.name not in wanted:
                continue
            raw = getattr(self, field.name)
            try:
                values[field.name] = field.clean(None if raw is UNSET else raw, runtime)
            except ValidationError as error:
                collect.add(error)
        if problems is None:
            collect.raise_any()
        return values
