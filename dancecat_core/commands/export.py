"""``dancecat export RUN``: a run's result in a format, to a file or stdout, with progress
on a terminal (``dancecat runs`` lists run ids)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dancecat_core.commands import progress
from dancecat_core.commands.context import runtime_for
from dancecat_core.db import session_scope
from dancecat_core.errors import ValidationError
from dancecat_core.services import trackers


def declare(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", type=int, metavar="RUN", help="a run id (see `dancecat runs`)")
    # No list here: building the parser must not load the plugins (every command pays for
    # it); an unknown format is refused naming the installed exporters' formats.
    parser.add_argument(
        "--format", default="csv", help="a registered download format (default csv)"
    )
    parser.add_argument("-o", "--output", type=Path, help="file to write (default stdout)")
    parser.set_defaults(handler=export_command)


def export_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        tracker = trackers.get(session, None, args.run_id)
        download = trackers.export(runtime, tracker, args.format)
    counter = progress.CsvCounter()
    # Not over the result itself when that goes to the same terminal.
    shown = progress.wanted() and (args.output is not None or not progress.wanted(sys.stdout))
    count = counter.feed if shown else None
    line = progress.ProgressLine(
        f"export {args.run_id}",
        counter,
        total_bytes=download.size,
        show_rows=args.format == "csv",
        enabled=shown,
    )
    if args.output is None:
        out = sys.stdout.buffer
        with line:
            for chunk in download.chunks:
                out.write(chunk)
                if count:
                    count(chunk)
        out.flush()
        return 0
    temp = args.output.with_name(args.output.name + ".partial")
    try:
        with line, open(temp, "wb") as handle:
            for chunk in download.chunks:
                handle.write(chunk)
                if count:
                    count(chunk)
        temp.replace(args.output)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise ValidationError(f"--output: cannot write {args.output}: {exc.strerror}") from None
    print(f"wrote {args.output}")
    return 0
