"""``dancecat export RUN``: a run's result in a format, to a file or stdout, with progress
on a terminal (``dancecat runs`` lists run ids).

The canonical CSV of a result kept in a local file goes to ``-o FILE`` by a kernel copy,
its tracker read through the DB-API (``dancecat_core.appdb_direct``): no SQLAlchemy, no
runtime, no bytes through Python. Everything else (other formats, stores, stdout, a
progress bar, a run that is not a valid success) takes the ordinary path.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from dancecat_core import appdb_direct
from dancecat_core.commands import progress
from dancecat_core.errors import ValidationError
from dancecat_core.plugins import collect, get_plugin_manager
from dancecat_core.settings import CORE_SETTINGS, collect_specs, load_settings


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
    # Not over the result itself when that goes to the same terminal.
    shown = progress.wanted() and (args.output is not None or not progress.wanted(sys.stdout))
    if args.format == "csv" and args.output is not None and not shown:
        source = _local_csv(args)
        if source is not None:
            with source:
                _write(args.output, lambda handle: _kernel_copy(source, handle))
            print(f"wrote {args.output}")
            return 0
    return _export(args, shown)


def _local_csv(args: argparse.Namespace) -> BinaryIO | None:
    """The run's stored CSV, opened, when its store keeps it as a local file."""
    settings = load_settings(args.config, specs=CORE_SETTINGS)
    stored = appdb_direct.stored_result(settings.database_url, args.run_id)
    if stored is None:
        return None
    pm = get_plugin_manager()
    store = collect(pm.hook.dancecat_register_result_stores(), "name", "result store").get(
        stored.store
    )
    if store is None:
        return None
    path = store.local_path(settings.with_specs(collect_specs(pm)), stored.key)
    try:
        return open(path, "rb") if path is not None else None
    except OSError:
        return None


def _kernel_copy(source: BinaryIO, target: BinaryIO) -> None:
    """``source`` into ``target`` by ``os.sendfile``: the kernel moves the bytes."""
    size = os.fstat(source.fileno()).st_size
    offset = 0
    while offset < size:
        sent = os.sendfile(target.fileno(), source.fileno(), offset, size - offset)
        if not sent:
            break
        offset += sent


def _write(output: Path, fill: Callable[[BinaryIO], None]) -> None:
    """Write ``output`` through a ``.partial`` file renamed into place when whole."""
    temp = output.with_name(output.name + ".partial")
    try:
        with open(temp, "wb") as handle:
            fill(handle)
        temp.replace(output)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise ValidationError(f"--output: cannot write {output}: {exc.strerror}") from None


def _export(args: argparse.Namespace, shown: bool) -> int:
    # The app database, the runtime and the exporters: imported for this path only.
    from dancecat_core.commands.context import runtime_for
    from dancecat_core.db import session_scope
    from dancecat_core.services import trackers

    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        tracker = trackers.get(session, None, args.run_id)
        download = trackers.export(runtime, tracker, args.format)
    counter = progress.CsvCounter()
    count = counter.feed if shown else None
    line = progress.ProgressLine(
        f"export {args.run_id}",
        counter,
        total_bytes=download.size,
        show_rows=args.format == "csv",
        enabled=shown,
    )

    def fill(handle: BinaryIO) -> None:
        for chunk in download.chunks:
            handle.write(chunk)
            if count:
                count(chunk)

    if args.output is None:
        with line:
            fill(sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return 0
    with line:
        _write(args.output, fill)
    print(f"wrote {args.output}")
    return 0
