"""``dancecat worker``: a huey consumer for this DanceCat (same as ``huey_consumer
dancecat_core.tasks.huey``, with the settings from ``-c``/``DANCECAT_CONFIG``)."""

from __future__ import annotations

import argparse
import logging

from dancecat_core.commands.context import runtime_for
from dancecat_core.tasks import configure, huey


def declare(worker: argparse.ArgumentParser) -> None:
    worker.add_argument("--workers", type=int, help="worker threads (default WORKERS)")
    worker.add_argument(
        "--processes",
        action="store_true",
        help="use worker processes instead of threads",
    )
    worker.add_argument(
        "--shutdown-timeout",
        type=float,
        default=30,
        help="on SIGTERM, seconds running jobs get to finish before they are handed back "
        "to the queue (default 30)",
    )
    worker.set_defaults(handler=worker_command)


def worker_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    configure(runtime=runtime)
    level = logging.DEBUG if args.debug else logging.INFO
    logging.getLogger().setLevel(level)
    logging.getLogger("huey").setLevel(level if args.debug else logging.WARNING)
    workers = args.workers or runtime.settings.workers
    if workers < 1:
        raise SystemExit("--workers must be at least 1")
    settings = runtime.settings
    queue = (settings.redis_url and "Redis") or f"SQLite file {settings.huey_file}"
    logging.getLogger(__name__).info(
        "worker: %s %s on queue %r (%s); checking schedules every %s s",
        workers,
        "processes" if args.processes else "threads",
        settings.huey_name,
        queue,
        settings.frequency_interval_seconds,
    )
    consumer = huey.create_consumer(
        workers=workers,
        worker_type="process" if args.processes else "thread",
        graceful_signal="TERM",
        shutdown_timeout=args.shutdown_timeout,
    )
    consumer.run()
    return 0
