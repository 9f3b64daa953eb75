"""The ``dancecat`` command (also ``python -m dancecat_core.console``).

Each command group lives in a module of ``dancecat_core.commands`` that exposes
``register(subparsers)``; this module only builds the parser, loads the settings and turns
errors into one line and a non-zero exit, never a traceback (``--debug`` shows it).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from dancecat_core.errors import DancecatError

COMMAND_MODULES = (
    "dancecat_core.commands.setup",
    "dancecat_core.commands.connections",
    "dancecat_core.commands.jobs",
    "dancecat_core.commands.accounts",
    "dancecat_web.commands",
    "dancecat_core.commands.schedules",
    "dancecat_core.commands.worker",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dancecat", description="Saved SQL queries as jobs, results as CSV, XLSX and JSON."
    )
    parser.add_argument("-c", "--config", help="INI file ([app:main]); or set DANCECAT_CONFIG")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except DancecatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for details)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
