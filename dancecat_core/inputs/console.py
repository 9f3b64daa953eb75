"""Console options from the input declarations: each field's flags, help, choices and
limits as its declaration states them, so no command writes a field's option by hand.

``add_arguments`` puts an input class's fields on an ``argparse`` parser; ``from_args``
reads them back into the input. A flag left out is not in the namespace, so the field
stays ``UNSET``: the service then keeps the stored value (an edit) or takes the declared
default (a create). Values are checked by the service, which names the field by its label;
only a fixed list of choices is also refused by the parser.

What each declaration gives (see ``InputField``):

- ``flag``: the option; without dashes, a positional argument when creating and
  ``--flag`` when editing (``job edit JOB --name N``);
- a boolean: ``flag`` on and ``off_flag`` (default ``--no-<flag>``) off;
- on an edit, ``off_flag`` of another field empties it (``--no-timeout``);
- a list (recipients, parameters, parameter values): ``flag`` repeated, one item each;
- ``file_flag``: the text read from that file instead (``--sql-file``);
- a secret: ``flag`` reads it from standard input, one line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from dancecat_core.errors import ValidationError
from dancecat_core.inputs.fields import LIST_KINDS, Input, InputField, Kind
from dancecat_core.inputs.recipients import RULES

FILE_SUFFIX = "_file"  # the namespace attribute of a field's ``file_flag``


def _text(*parts: str) -> str:
    """Help text from parts, each ending its sentence, ``%`` kept literal for argparse
    (which formats help with ``%``)."""
    sentences = (part if part.endswith((".", "?", "!")) else f"{part}." for part in parts if part)
    text = " ".join(sentences)
    return text.replace("%", "%%")


def _limits(field: InputField) -> str:
    if field.kind is not Kind.INTEGER or (field.minimum is None and field.maximum is None):
        return ""
    if field.maximum is None:
        return f"At least {field.minimum}"
    if field.minimum is None:
        return f"At most {field.maximum}"
    return f"From {field.minimum} to {field.maximum}"


def _choices_help(field: InputField) -> str:
    """The choices' labels, when they say more than the values do."""
    pairs = field.options() if not callable(field.choices) else []
    if all(label.lower() == value.lower() for value, label in pairs):
        return ""
    return "; ".join(f"{value}: {label.lower()}" for value, label in pairs)


def _help(field: InputField, note: str = "", *more: str) -> str:
    """Label, help, limits and choices; a field with a ``note`` is given in the note's
    form (a connection's name), so its stored value's limits are not said."""
    limits = "" if note else _limits(field)
    return _text(field.label, field.help, limits, _choices_help(field), note, *more)


def _choice_type(field: InputField) -> Callable[[str], str]:
    """A fixed choice in any letter case, as the services take it (``Daily`` is daily)."""
    values = {value.lower(): value for value, _ in field.options()}

    def choice(raw: str) -> str:
        return values.get(raw.strip().lower(), raw)

    return choice


def _empty(field: InputField) -> Any:
    if field.kind in LIST_KINDS or field.kind is Kind.PARAMETERS:
        return []
    return {} if field.kind is Kind.VALUES else None


# The repeatable flags: each use adds one item; how one is written.
REPEATED = {
    Kind.EMAILS: None,
    Kind.RECIPIENTS: None,
    Kind.PARAMETERS: "NAME:TYPE[=DEFAULT]",
    Kind.VALUES: "NAME=VALUE",
}


def add_arguments(
    parser: argparse.ArgumentParser,
    input_class: type[Input],
    *,
    editing: bool = False,
    skip: Iterable[str] = (),
    notes: Mapping[str, str] | None = None,
) -> None:
    """The options of each field of ``input_class`` that has a flag (``skip``: field
    names). ``editing``: nothing is required and ``off_flag`` empties a field; ``notes``:
    more help for some fields, by name (how the console names a connection)."""
    skipped, notes = set(skip), notes or {}
    for field in input_class.fields():
        if not field.flag or field.name in skipped:
            continue
        note = notes.get(field.name, "")
        text = _help(field, note)
        if not field.flag.startswith("-"):
            if editing:
                parser.add_argument(
                    f"--{field.flag}", dest=field.name, default=argparse.SUPPRESS, help=text
                )
            else:
                parser.add_argument(field.name, metavar=field.flag, help=text)
            continue
        if field.kind is Kind.BOOLEAN:
            _boolean(parser, field, editing)
            continue
        options: dict[str, Any] = {
            "dest": field.name,
            "default": argparse.SUPPRESS,
            "help": text,
            "metavar": field.flag.removeprefix("--").replace("-", "_").upper(),
        }
        if field.kind is Kind.SECRET:
            options["action"] = "store_true"
            del options["metavar"]
            options["help"] = _help(field, note, "Read from standard input, one line")
        elif field.kind in REPEATED:
            options["action"] = "append"
            options["metavar"] = REPEATED[field.kind] or options["metavar"]
            if field.kind is not Kind.EMAILS:
                options["help"] = _help(field, note, "Repeatable")
        elif field.kind is Kind.CHOICE and not callable(field.choices):
            options["choices"] = [value for value, _ in field.options()]
            del options["metavar"]  # argparse shows the choices
            options["type"] = _choice_type(field)
        if field.kind is Kind.RECIPIENTS:
            add_rule_flags(parser, field.name)
        required = field.required and not editing
        alternatives = [flag for flag in (field.file_flag, editing and field.off_flag) if flag]
        if not alternatives:
            parser.add_argument(field.flag, required=required, **options)
            continue
        group = parser.add_mutually_exclusive_group(required=required)
        group.add_argument(field.flag, **options)
        if field.file_flag:
            group.add_argument(
                field.file_flag,
                dest=field.name + FILE_SUFFIX,
                type=Path,
                default=argparse.SUPPRESS,
                metavar="FILE",
                help=_text(f"{field.label}, read from this file (UTF-8)"),
            )
        if editing and field.off_flag:
            group.add_argument(
                field.off_flag,
                dest=field.name,
                action="store_const",
                const=_empty(field),
                default=argparse.SUPPRESS,
                help=_text(f"{field.label}: none", field.help),
            )


class _AmendLast(argparse.Action):
    """``--send-when RULE`` / ``--condition TEXT``: words added to the recipient named by
    the ``--recipient`` just before (the recipient grammar of ``inputs.recipients``)."""

    def __init__(self, *args: Any, target: str, word: str, **kwargs: Any) -> None:
        self.target, self.word = target, word
        super().__init__(*args, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        entries = getattr(namespace, self.target, None)
        if not entries:
            parser.error(f"{option_string} needs a --recipient before it")
        if f" {self.word} " in f" {entries[-1]} ":
            parser.error(f"{option_string} given twice for {entries[-1].split()[0]}")
        entries[-1] = f"{entries[-1]} {self.word} {values}"


def add_rule_flags(parser: argparse.ArgumentParser, target: str) -> None:
    """``--send-when`` and ``--condition``, each for the ``--recipient`` before it."""
    parser.add_argument(
        "--send-when",
        action=_AmendLast,
        target=target,
        word="when",
        dest=argparse.SUPPRESS,
        default=argparse.SUPPRESS,
        choices=RULES,
        help="When the --recipient before it is mailed (default: always).",
    )
    parser.add_argument(
        "--condition",
        action=_AmendLast,
        target=target,
        word="if",
        dest=argparse.SUPPRESS,
        default=argparse.SUPPRESS,
        metavar="CONDITION",
        help=_text(
            "Mail the --recipient before it only if this holds for the result: "
            "'rows > 0', 'total >= 100', \"status = 'stuck'\""
        ),
    )


def _boolean(parser: argparse.ArgumentParser, field: InputField, editing: bool) -> None:
    """``flag`` on, ``off_flag`` off; on a create, the declared default is said."""
    off = field.off_flag or "--no-" + field.flag.removeprefix("--")
    said = {
        value: "" if editing or bool(field.default) != value else " (the default)"
        for value in (True, False)
    }
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        field.flag,
        dest=field.name,
        action="store_true",
        default=argparse.SUPPRESS,
        help=_text(f"{field.label}: yes{said[True]}", field.help),
    )
    group.add_argument(
        off,
        dest=field.name,
        action="store_false",
        default=argparse.SUPPRESS,
        help=_text(f"{field.label}: no{said[False]}"),
    )


def _read_file(field: InputField, path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ValidationError(f"{field.label}: cannot read {path}: {reason}", field.name) from None


def _read_secret() -> str:
    return sys.stdin.readline().rstrip("\r\n")


def from_args(
    input_class: type[Input],
    args: argparse.Namespace,
    *,
    resolve: Mapping[str, Callable[[Any], Any]] | None = None,
) -> Input:
    """The input the parsed ``args`` give; fields whose flags were left out stay unset.
    ``resolve``: what turns a field's console value into the stored one, by field name
    (a connection's name or ``id:N`` into its id)."""
    resolve = resolve or {}
    given: dict[str, Any] = {}
    for field in input_class.fields():
        if not field.flag:
            continue
        if hasattr(args, field.name + FILE_SUFFIX):
            given[field.name] = _read_file(field, getattr(args, field.name + FILE_SUFFIX))
        elif hasattr(args, field.name):
            value = getattr(args, field.name)
            if field.kind is Kind.SECRET:
                if not value:
                    continue
                value = _read_secret()
            given[field.name] = value
        else:
            continue
        if field.name in resolve and given[field.name] is not None:
            given[field.name] = resolve[field.name](given[field.name])
    return input_class.from_values(given)
