"""The ``dancecat`` command (also ``python -m dancecat_core.console``).

``COMMANDS`` is the registry: each top-level command names the function that declares its
arguments, ``"module:function"``. Only the module of the command being run is imported, on
dispatch, so ``dancecat --help`` imports no SQLAlchemy, Pyramid, huey or database driver,
and ``dancecat job list`` none of the web app, the queue, Alembic or the drivers. A
declaring function takes the command's own ``ArgumentParser`` and sets ``handler`` (a
function of the parsed arguments returning the exit status, or its ``"module:function"``
to import only when that sub-command runs) on it or on its sub-parsers.

Standard error carries one line per error and nothing else: no usage block, no traceback
(``--debug`` shows it), no log records unless ``--verbose`` (the long-running ``worker``
and ``serve`` always log). That line is masked like every stored error (``shown_error``):
a setting's, an argument's or a driver's message may quote a URL with its password.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple, NoReturn

from dancecat_core.errors import DancecatError

if TYPE_CHECKING:
    from dancecat_core.scrubbing import ValuePattern

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class Command(NamedTuple):
    name: str
    help: str
    declare: str  # "module:function", imported only when this command runs
    logs: bool = False  # a long-running service: log records go to stderr without --verbose
    # Other names for it: the original DanceCats' console names (``add_allowed_user``), so
    # its users' scripts keep working.
    aliases: tuple[str, ...] = ()


COMMANDS: tuple[Command, ...] = (
    Command(
        "init",
        "create or upgrade the app database",
        "dancecat_core.commands.setup:declare_init",
        aliases=("db_create_all",),
    ),
    Command(
        "rotate-key",
        "re-encrypt every stored connection password under a new key",
        "dancecat_core.commands.setup:declare_rotate_key",
    ),
    Command(
        "add-allowed-user",
        "let an email register (its first sign-in sets the password)",
        "dancecat_core.commands.accounts:declare_allow",
        aliases=("add_allowed_user",),
    ),
    Command(
        "user",
        "list, disable, enable, reset or remove users",
        "dancecat_core.commands.accounts:declare_user",
    ),
    Command("token", "API tokens", "dancecat_core.commands.accounts:declare_token"),
    Command(
        "connection", "databases that jobs query", "dancecat_core.commands.connections:declare"
    ),
    Command("job", "saved queries", "dancecat_core.commands.jobs:declare"),
    Command(
        "destination",
        "where results go: test one now",
        "dancecat_core.commands.destinations:declare",
    ),
    Command(
        "runs", "list runs (newest first), to find a run id", "dancecat_core.commands.runs:declare"
    ),
    Command("export", "write a run's result in a format", "dancecat_core.commands.export:declare"),
    Command(
        "pull-url",
        "URLs that give a job's newest result without sign-in",
        "dancecat_core.commands.job_urls:declare_pull_url",
    ),
    Command(
        "trigger",
        "URLs that queue a run of a job when POSTed to",
        "dancecat_core.commands.job_urls:declare_trigger",
    ),
    Command("schedule", "when jobs run by themselves", "dancecat_core.commands.schedules:declare"),
    Command(
        "schedule_update",
        "advance schedules whose next run passed while nothing was running",
        "dancecat_core.commands.schedule_update:declare",
    ),
    Command(
        "import-dancecats",
        "bring an original DanceCats installation over (users, connections, jobs, schedules)",
        "dancecat_core.commands.import_dancecats:declare",
    ),
    Command(
        "settings",
        "every setting (core and plugins'): value, default, type, meaning",
        "dancecat_core.commands.settings:declare",
    ),
    Command(
        "worker",
        "run queued jobs, schedules and emails",
        "dancecat_core.commands.worker:declare",
        logs=True,
    ),
    Command(
        "serve",
        "serve the web app and JSON API (waitress)",
        "dancecat_web.commands:declare",
        logs=True,
    ),
)


class UsageError(Exception):
    """The command line itself was refused (argparse's complaint, as one line)."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are raised, to be printed as one line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", help="INI file ([app:main]); or set DANCECAT_CONFIG")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also print log records on stderr"
    )
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and debug log records"
    )


def _chosen(argv: Sequence[str]) -> Command | None:
    """The command named on this command line, read as argparse will read it."""
    pre = Parser(add_help=False)
    _global_options(pre)
    pre.add_argument("words", nargs=argparse.REMAINDER)
    try:
        known, _ = pre.parse_known_args(argv)
    except UsageError:
        return None  # the full parser reports it
    name = known.words[0] if known.words else None
    return next(
        (command for command in COMMANDS if name == command.name or name in command.aliases),
        None,
    )


def build_parser(chosen: Command | None) -> Parser:
    """The parser: every command listed, only ``chosen``'s arguments declared (imported)."""
    parser = Parser(
        prog="dancecat",
        description="Saved SQL queries as jobs, results as CSV, XLSX and JSON. "
        "JOB and CONNECTION arguments take a name, or id:N for the one with id N.",
    )
    _global_options(parser)
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=Parser
    )
    for command in COMMANDS:
        sub = subparsers.add_parser(
            command.name,
            aliases=list(command.aliases),
            help=command.help,
            description=command.help,
        )
        if command is chosen:
            module, _, function = command.declare.partition(":")
            getattr(importlib.import_module(module), function)(sub)
    return parser


def _handler(handler: str | Callable[[argparse.Namespace], int]):
    """A command's handler; ``"module:function"`` is imported now, on dispatch."""
    if isinstance(handler, str):
        module, _, function = handler.partition(":")
        return getattr(importlib.import_module(module), function)
    return handler


_process = {"own": False}  # True when ``main`` is this process's program (not a test's call)


@contextlib.contextmanager
def starting_up() -> Iterator[None]:
    """Imports and start-up without the cyclic garbage collector.

    A command's start-up (its modules, SQLAlchemy's, the plugins') allocates hundreds of
    thousands of objects, none of them garbage, and each collection on the way walked
    them all again: ~20% of ``dancecat job run``'s start-up CPU. In a process of its own,
    what start-up made is then frozen (``gc.freeze``), so later collections skip it too.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if _process["own"]:
            gc.freeze()
        if enabled:
            gc.enable()


def one_line(text: str) -> str:
    """A message as one line: a database's multi-line error joined with " | "."""
    return " | ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _configure_logging(verbose: bool, debug: bool) -> None:
    logging.captureWarnings(True)  # library warnings are log records too
    if verbose or debug:
        logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format=LOG_FORMAT)
    else:
        # No handler would send WARNING and above to stderr through logging.lastResort.
        logging.basicConfig(handlers=[logging.NullHandler()], level=logging.CRITICAL)


def _error_patterns(config: str | None) -> list[ValuePattern]:
    """The installed plugins' value patterns for the configured settings, or for none when
    the settings are what failed; none at all if the plugins cannot load."""
    # Imported here, when a command has failed: ``--help`` needs none of them.
    from dancecat_core.plugins import get_plugin_manager, value_patterns
    from dancecat_core.settings import Settings, load_settings

    settings: Settings | None
    try:
        settings = load_settings(config)
    except DancecatError:
        settings = None
    try:
        return value_patterns(get_plugin_manager(), settings)
    except (DancecatError, ImportError):
        return []


def _error_line(text: str, config: str | None) -> str:
    """``error: text`` on one line, masked (it is only built when a command failed)."""
    from dancecat_core.error_text import shown_error

    return f"error: {shown_error(one_line(text), _error_patterns(config))}"


def main(argv: Sequence[str] | None = None) -> int:
    _process["own"] = argv is None
    words = list(sys.argv[1:] if argv is None else argv)
    debug = False
    config = None  # the -c file, once the arguments are parsed
    try:
        with starting_up():
            chosen = _chosen(words)
            args = build_parser(chosen).parse_args(words)
            debug, config = args.debug, args.config
            _configure_logging(args.verbose or bool(chosen and chosen.logs), debug)
            handler = _handler(args.handler)
        return int(handler(args) or 0)
    except UsageError as exc:
        print(_error_line(str(exc), config), file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`dancecat runs | head -1`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        if isinstance(exc, DancecatError):
            print(_error_line(str(exc), config), file=sys.stderr)
            return 2
        text = f"unexpected {type(exc).__name__}: {exc} (run with --debug for details)"
        print(_error_line(text, config), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
