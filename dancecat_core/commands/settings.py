"""``dancecat settings``: every setting core and the installed plugins declare, with the
value this invocation would use, its default, type, origin and meaning.

Secret settings show ``HIDDEN_SECRET`` when set, and every other value passes the value
masker (a ``DATABASE_URL`` may hold a password). ``--markdown`` prints the declarations as
the README's configuration table, which a test keeps equal to them.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from dancecat_core.commands import output
from dancecat_core.error_text import HIDDEN_SECRET, clean_error
from dancecat_core.plugins import get_plugin_manager, value_patterns
from dancecat_core.scrubbing import ValuePattern
from dancecat_core.settings import Settings, SettingSpec, collect_specs, load_settings, shown_value

COLUMNS = ("key", "value", "default", "type", "origin", "help")


def declare(parser: argparse.ArgumentParser) -> None:
    output.add_json_flag(parser)
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="print the declarations as a Markdown table (the README's) and no values",
    )
    parser.set_defaults(handler=settings_command)


def value_text(spec: SettingSpec, settings: Settings, patterns: Sequence[ValuePattern]) -> str:
    """``spec``'s value in ``settings`` as it may be printed."""
    value = getattr(settings, spec.attribute)
    if spec.secret:
        return HIDDEN_SECRET if value else "unset"
    return clean_error(shown_value(value), patterns=patterns)


def rows(settings: Settings, specs: Sequence[SettingSpec], patterns: Sequence[ValuePattern]):
    return [
        {
            "key": spec.key,
            "value": value_text(spec, settings, patterns),
            "default": spec.default_text(),
            "type": spec.type.name,
            "origin": spec.origin,
            "help": spec.help,
        }
        for spec in specs
    ]


def markdown_table(specs: Sequence[SettingSpec]) -> str:
    """The README's configuration table: one row per declared setting."""
    lines = ["| key | default | type | meaning |", "|---|---|---|---|"]
    for spec in specs:
        origin = "" if spec.origin == "core" else f" ({spec.origin} plugin)"
        cells = (f"`{spec.key}`", spec.default_text(), spec.type.name, spec.help + origin)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def settings_command(args: argparse.Namespace) -> int:
    pm = get_plugin_manager()
    specs = collect_specs(pm)
    if args.markdown:
        print(markdown_table(specs), end="")
        return 0
    settings = load_settings(args.config, specs=specs)
    listed: list[dict[str, Any]] = rows(settings, specs, value_patterns(pm, settings))
    output.emit(COLUMNS, listed, args.json)
    return 0
