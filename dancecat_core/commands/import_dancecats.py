"""``dancecat import-dancecats``: bring an original DanceCats installation over
(``dancecat_core.importer``) and print the INI lines its config file becomes
(``dancecat_core.original_config``)."""

from __future__ import annotations

import argparse

from dancecat_core.commands.context import runtime_for
from dancecat_core.errors import ConfigError
from dancecat_core.importer import import_original, read_original, source_engine
from dancecat_core.original_config import ini_lines, read_original_config
from dancecat_core.plugins import get_plugin_manager
from dancecat_core.settings import collect_specs


def declare(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="source",
        metavar="DATABASE_URL",
        help="the original's database (its SQLALCHEMY_DATABASE_URI; default: the one in "
        "--config), e.g. mysql://user:pw@host/dancecats",
    )
    parser.add_argument(
        "--config",
        dest="original_config",
        metavar="ORIGINAL_CONFIG_FILE",
        help="the original's config file (read, never run): DB_ENCRYPT_KEY for the "
        "connection passwords, and settings printed as DanceCat INI lines",
    )
    parser.add_argument(
        "--timezone",
        help="the zone the original's times were in (it stored the server's local time); "
        "default: TIMEZONE (the server's)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would change and write nothing"
    )
    parser.set_defaults(handler=import_command)


def import_command(args: argparse.Namespace) -> int:
    values = read_original_config(args.original_config) if args.original_config else {}
    source = args.source or values.get("SQLALCHEMY_DATABASE_URI")
    if not isinstance(source, str) or not source:
        raise ConfigError(
            "--from: give the original's database URL (or --config with its "
            "SQLALCHEMY_DATABASE_URI)"
        )
    key = values.get("DB_ENCRYPT_KEY")
    if key is not None and not isinstance(key, str):
        raise ConfigError("original config: DB_ENCRYPT_KEY is not a string")
    runtime = runtime_for(args)
    timezone = args.timezone or runtime.settings.timezone
    original = read_original(source_engine(source))
    report = import_original(runtime, original, key=key, timezone=timezone, dry_run=args.dry_run)
    print(f"times of the original read as {timezone} (--timezone)")
    for line in report.lines:
        print(line)
    counts = report.counts
    done = "would be" if args.dry_run else "were"
    print(
        f"{counts['added']} {done} added, {counts['present']} already present, "
        f"{counts['skipped']} skipped"
    )
    if args.dry_run:
        print("dry run: nothing was written")
    if values:
        print()
        for line in ini_lines(values, collect_specs(get_plugin_manager()), args.original_config):
            print(line)
    return 0
