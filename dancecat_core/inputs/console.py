"""Console options from the input declarations: one flag per field, its help the label's.

``add_arguments`` puts an input class's fields on an ``argparse`` parser (each field's
``flag``; a flag without dashes is positional); ``from_args`` reads them back into the
input. A flag left out is not in the namespace, so the field stays ``UNSET``: the service
then keeps the stored value (an edit) or takes the declared default (a create).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from dancecat_core.inputs.fields import Input, InputField, Kind


def dest(field: InputField) -> str:
    """The namespace attribute a field's flag sets."""
    return field.flag.lstrip("-").replace("-", "_")


def _help(field: InputField) -> str:
    text = f"{field.label}. {field.help}".strip()
    return text.replace("%", "%%")


def add_arguments(
    parser: argparse.ArgumentParser, input_class: type[Input], *, skip: Iterable[str] = ()
) -> None:
    """One option per field of ``input_class`` that has a flag (``skip``: field names)."""
    skipped = set(skip)
    for field in input_class.fields():
        if not field.flag or field.name in skipped:
            continue
        if not field.flag.startswith("-"):
            parser.add_argument(field.flag, help=_help(field))
            continue
        options: dict = {"dest": dest(field), "default": argparse.SUPPRESS, "help": _help(field)}
        if field.kind is Kind.BOOLEAN:
            options["action"] = argparse.BooleanOptionalAction
        elif field.kind is Kind.EMAILS:
            options["action"] = "append"
        elif field.kind is Kind.CHOICE and not callable(field.choices):
            options["choices"] = [value for value, _ in field.options()]
        parser.add_argument(field.flag, **options)


def from_args(input_class: type[Input], args: argparse.Namespace) -> Input:
    """The input the parsed ``args`` give; fields whose flag was left out stay unset."""
    given = {
        field.name: getattr(args, dest(field))
        for field in input_class.fields()
        if field.flag and hasattr(args, dest(field))
    }
    return input_class.from_values(given)
